"""Large states (a chat history up to ~1 MB) through the hot path's UTF-8 binding: stored
as JSON *text* an operator can query, read back exactly, on UTF-8 and UTF-16 files."""

from __future__ import annotations

import sqlite3

import pytest

from benchmarks.chat_state import chat_state
from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.errors import CheckpointValueError


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16le"])
def test_large_states_are_text_at_the_sqlite3_prompt(tmp_path, encoding) -> None:
    path = tmp_path / "large.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA encoding = '{encoding}'")
    raw.execute("CREATE TABLE made_by_hand (x)")  # the encoding is fixed on first write
    raw.commit()
    raw.close()
    states = [chat_state(step, size) for step, size in ((1, 1_000), (2, 120_000), (3, 1_000_000))]
    with CheckpointStore(path) as store:
        mgr = CheckpointManager("big", store=store)
        ids = [mgr.create("turn", state).id for state in states * 2]  # the 2nd lap: one INSERT
        assert ids == [f"big:{n}" for n in range(1, 7)]
        for n, state in enumerate(states * 2, start=1):
            assert mgr.get(f"big:{n}").data == state
        assert mgr.get_latest().data == states[-1]
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA encoding").fetchone()[0] == encoding
        rows = raw.execute(
            "SELECT seq, typeof(data), json_valid(data), json_extract(data, '$.step'),"
            " json_array_length(data, '$.messages') FROM checkpoints ORDER BY seq"
        ).fetchall()
        assert [r[:4] for r in rows] == [(n, "text", 1, (n - 1) % 3 + 1) for n in range(1, 7)]
        assert [r[4] for r in rows[:3]] == [len(s["messages"]) for s in states]
    finally:
        raw.close()


def test_a_refused_large_state_writes_nothing(tmp_path) -> None:
    state = chat_state(1, 120_000)
    state["messages"][-7]["score"] = float("nan")
    with CheckpointStore(tmp_path / "x.db") as store:
        mgr = CheckpointManager("big", store=store)
        mgr.create("ok", {"a": 1})
        mgr.create("ok", {"a": 2})  # the connection now knows the counter: the one-INSERT path
        n = len(state["messages"]) - 7
        with pytest.raises(CheckpointValueError, match=rf"^data\['messages'\]\[{n}\]\['score'\]"):
            mgr.create("bad", state)
        assert mgr.create("ok", {"a": 3}).id == "big:3"
    raw = sqlite3.connect(tmp_path / "x.db")
    assert raw.execute("SELECT count(*), max(seq) FROM checkpoints").fetchone() == (3, 3)
    raw.close()


def test_a_state_over_the_size_limit_is_refused_before_any_io(backend_url, raw) -> None:
    """1.1 GB of JSON: SQLite's value limit, and a message PostgreSQL answers by closing
    the connection (it read as "cannot be reached"). Refused by name; nothing written."""
    with CheckpointStore(backend_url) as store:
        mgr = CheckpointManager("huge", store=store)
        mgr.create("small", {"a": 1})
        huge = {"text": "x" * 1_100_000_000}
        with pytest.raises(CheckpointValueError, match=r"^data .*1,100,000,0\d\d bytes as JSON"):
            mgr.create("huge", huge)
        del huge
        assert mgr.create("after", {"a": 2}).id == "huge:2"  # the connection lived
    db = raw()
    assert db.query("SELECT seq, name FROM checkpoints ORDER BY seq") == [
        (1, "small"),
        (2, "after"),
    ]


def test_data_and_metadata_are_bounded_together_on_every_write_path(tmp_path, monkeypatch) -> None:
    """The limit is on the row: a create, an async create, an import entry and a
    LangGraph checkpoint whose data and metadata each fit but together do not."""
    import asyncio

    from breakpilot_store import AsyncCheckpointManager, codec
    from breakpilot_store.errors import ImportFormatError

    monkeypatch.setattr(codec, "MAX_VALUE_BYTES", 1_000)
    data, meta = {"d": "x" * 600}, {"m": "y" * 600}
    path = tmp_path / "bound.db"
    with CheckpointStore(path) as store:
        mgr = CheckpointManager("s", store=store)
        with pytest.raises(CheckpointValueError, match=r"^data with metadata is 1,2\d\d bytes"):
            mgr.create("both", data, metadata=meta)
        with pytest.raises(CheckpointValueError, match=r"^data is 1,2\d\d bytes"):
            mgr.create("one", {"d": "x" * 1_200})
        mgr.create("fits", data)
        doc = {
            "version": 1,
            "checkpoints": [
                {
                    "id": "s:7",
                    "name": "n",
                    "timestamp": "2026-01-01T00:00:00+00:00",
                    "data": data,
                    "metadata": meta,
                }
            ],
        }
        with pytest.raises(ImportFormatError, match=r"data with metadata is 1,2\d\d bytes"):
            store.import_checkpoints("s", doc["checkpoints"])

    async def in_async() -> None:
        async with AsyncCheckpointManager("s", store=str(path)) as amgr:
            with pytest.raises(CheckpointValueError, match=r"^data with metadata is"):
                await amgr.create("both", data, metadata=meta)

    asyncio.run(in_async())

    from langgraph.checkpoint.base import empty_checkpoint

    from breakpilot_store.langgraph import BreakpilotSaver

    with BreakpilotSaver.from_conn_string(str(path)) as saver:
        cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": "z" * 1_200}
        with pytest.raises(CheckpointValueError, match=r"^the checkpoint with its metadata is"):
            saver.put(cfg, checkpoint, {}, {})
        saved = saver.put(cfg, empty_checkpoint(), {}, {})
        with pytest.raises(CheckpointValueError, match=r"^a pending write is"):
            saver.put_writes(saved, [("messages", "w" * 1_200)], "task-1")
    db = sqlite3.connect(path)
    try:
        assert db.execute(
            "SELECT session_id, seq, name FROM checkpoints ORDER BY seq"
        ).fetchall() == [
            ("s", 1, "fits"),
            ("t", 1, db.execute("SELECT name FROM checkpoints WHERE session_id='t'").fetchone()[0]),
        ]
        assert db.execute("SELECT count(*) FROM langgraph_writes").fetchone() == (0,)
    finally:
        db.close()
