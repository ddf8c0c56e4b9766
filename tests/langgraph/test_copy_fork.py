"""store.copy_session / fork_session (sync and async) and copy_thread on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from breakpilot_store import AsyncCheckpointStore, CheckpointStore, CheckpointValueError
from breakpilot_store.errors import UnknownSessionError
from breakpilot_store.langgraph import BreakpilotSaver
from tests.langgraph.graphs import counting_graph, start_count


def test_copy_session_keeps_seqs_names_times_and_records_origins(
    backend_url: str, raw: Any
) -> None:
    with CheckpointStore(backend_url) as store:
        for n in range(4):
            store.create("src", f"n{n}", {"n": n}, {"m": n})
        store.compress("src", compress_after=1, max_checkpoints=3)  # drops seq 2 or so
        src = store.list_checkpoints("src")
        assert store.copy_session("src", "dst") == len(src)
        dst = store.list_checkpoints("dst")
        assert [(c.seq, c.name, c.timestamp, c.data, c.metadata) for c in dst] == [
            (c.seq, c.name, c.timestamp, c.data, c.metadata) for c in src
        ]
        assert store.create("dst", "next", {}).seq == src[-1].seq + 1
        # A copy of the copy still names the first source.
        store.copy_session("dst", "dst2")
    origins = raw().query(
        "SELECT seq, origin_id FROM checkpoints WHERE session_id = 'dst2' ORDER BY seq"
    )
    assert origins[: len(src)] == [(c.seq, f"src:{c.seq}") for c in src]
    assert origins[-1] == (src[-1].seq + 1, "dst:" + str(src[-1].seq + 1))


def test_fork_session_up_to_a_checkpoint_and_errors_change_nothing(
    backend_url: str, raw: Any
) -> None:
    with CheckpointStore(backend_url) as store:
        for n in range(5):
            store.create("s", "step", {"n": n})
        assert store.fork_session("s:3", "f") == 3
        assert [c.data["n"] for c in store.list_checkpoints("f")] == [0, 1, 2]
        assert store.create("f", "step", {"n": 99}).id == "f:4"
        before = raw().dump()
        for args, error in [
            (("s:9", "g"), UnknownSessionError),
            (("nope:1", "g"), UnknownSessionError),
            (("s", "g"), CheckpointValueError),
            (("s:2", "f"), CheckpointValueError),
            (("s:2", ""), CheckpointValueError),
        ]:
            with pytest.raises(error):
                store.fork_session(*args)
        with pytest.raises(UnknownSessionError):
            store.copy_session("missing", "g")
        assert raw().dump() == before


def test_async_store_copy_and_fork_are_the_same_operations(backend_url: str) -> None:
    async def main() -> None:
        async with AsyncCheckpointStore(backend_url) as astore:
            astore.sync_store.create("a", "x", {"v": 1})
            astore.sync_store.create("a", "y", {"v": 2})
            assert await astore.copy_session("a", "b") == 2
            assert await astore.fork_session("a:1", "c") == 1
            assert [c.name for c in astore.sync_store.list_checkpoints("c")] == ["x"]

    asyncio.run(main())


def test_copy_thread_copies_every_namespace_and_the_copy_resumes(backend_url: str) -> None:
    config = {"configurable": {"thread_id": "orig"}}
    with BreakpilotSaver(backend_url) as saver:
        graph = counting_graph(saver, steps=3)
        graph.invoke(start_count(), config)
        saver.copy_thread("orig", "copy")
        copied = [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": "copy"}})]
        assert copied == [t.checkpoint["id"] for t in saver.list(config)]
        with pytest.raises(CheckpointValueError, match="already exists"):
            saver.copy_thread("orig", "copy")
        state = graph.get_state({"configurable": {"thread_id": "copy"}})
        assert state.values["count"] == 3
        assert saver.store.session_info("copy").checkpoints == len(copied)
