"""How the async store's writer thread wakes its callers' event loops (core/loopwake).

On Linux each loop gets one eventfd that the writer thread signals; elsewhere (or on a
loop without ``add_reader``) ``call_soon_threadsafe``. Either way every caller gets its
outcome, on every loop, on both backends.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import inspect
import os
import threading

import pytest

from breakpilot_store import AsyncCheckpointManager, AsyncCheckpointStore, CheckpointValueError
from breakpilot_store.core import loopwake, operations

linux_only = pytest.mark.skipif(not hasattr(os, "eventfd"), reason="os.eventfd is Linux-only")


def counting_threadsafe_calls(loop: asyncio.AbstractEventLoop) -> list[object]:
    """Record every ``call_soon_threadsafe`` on ``loop`` from now on."""
    calls: list[object] = []
    original = loop.call_soon_threadsafe

    def counted(callback, *args, **kwargs):
        calls.append(callback)
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    return calls


@linux_only
def test_callers_are_woken_through_the_loops_eventfd_not_the_self_pipe(backend_url):
    """Lone creates and a group of 100 reach their callers without call_soon_threadsafe."""

    async def main() -> list[object]:
        async with AsyncCheckpointStore(backend_url, durability="full") as store:
            await store.create("warm", "n", {})
            calls = counting_threadsafe_calls(asyncio.get_running_loop())
            manager = AsyncCheckpointManager("solo", store=store)
            for i in range(20):  # one at a time: each alone in its group
                assert (await manager.create("step", {"i": i})).seq == i + 1
            created = await asyncio.gather(
                *(store.create(f"s{i}", "n", {"i": i}) for i in range(100))
            )
            assert [c.id for c in created] == [f"s{i}:1" for i in range(100)]
            with pytest.raises(CheckpointValueError):  # an error is handed the same way
                await store.run(_refuse, write=True)
            return list(calls)  # (the close that follows uses threads of its own)

    assert asyncio.run(main()) == []


def _refuse(conn):
    raise CheckpointValueError("refused")


def test_without_add_reader_the_writer_falls_back_to_call_soon_threadsafe(db_path, monkeypatch):
    """A loop that cannot watch a descriptor (Windows' proactor) still gets every outcome."""

    def no_reader(self, fd, callback, *args):
        raise NotImplementedError

    monkeypatch.setattr(asyncio.SelectorEventLoop, "add_reader", no_reader)

    async def main() -> tuple[list[object], list[int]]:
        calls = counting_threadsafe_calls(asyncio.get_running_loop())
        async with AsyncCheckpointStore(db_path) as store:
            seqs = [(await store.create("solo", "n", {"i": i})).seq for i in range(5)]
            group = await asyncio.gather(*(store.create(f"g{i}", "n", {}) for i in range(50)))
            seqs += [c.seq for c in group]
        return calls, seqs

    calls, seqs = asyncio.run(main())
    assert seqs == [1, 2, 3, 4, 5] + [1] * 50
    assert len(calls) >= 6  # each lone create, and the group, came back this way


def test_one_sqlite_store_serves_loops_on_two_threads_at_once(db_path):
    """Each loop gets its callers' outcomes (its own waker), however the groups mix them."""
    store = AsyncCheckpointStore(db_path)
    results: dict[str, list[int]] = {}

    def agent(name: str) -> None:
        async def run() -> list[int]:
            out = []
            for _ in range(30):
                made = await asyncio.gather(
                    *(store.create(f"{name}-{j}", "n", {}) for j in range(5))
                )
                out += [c.seq for c in made]
            return out

        results[name] = asyncio.run(run())

    threads = [threading.Thread(target=agent, args=(name,)) for name in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(store.close())
    for name in ("a", "b", "c"):
        assert sorted(results[name]) == sorted(list(range(1, 31)) * 5)


@linux_only
def test_a_loops_eventfd_is_closed_once_the_loop_is_gone(db_path):
    """One descriptor per loop while it lives; none left behind by loops that ended."""
    store = AsyncCheckpointStore(db_path)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def one_create(i: int) -> None:
        await store.create("s", "n", {"i": i})

    asyncio.run(one_create(0))  # the store's threads and connections exist from here on
    gc.collect()
    before = open_fds()
    for i in range(1, 21):
        asyncio.run(one_create(i))
    gc.collect()
    assert open_fds() <= before
    assert len(loopwake._WAKERS) <= 1
    asyncio.run(store.close())


def test_a_create_waiting_for_the_writer_holds_no_coroutine_of_the_store(db_path):
    """Per create in flight: the manager's ``create`` awaiting the write itself.

    No ``_create`` or outcome frame, no future beside the write, no bound drop nor
    partial: at 1,000 agents every object a create keeps alive while it waits is in
    every young garbage collection (benchmarks/OPTIMISATIONS.md, the async API, third
    and fourth rounds).
    """
    from breakpilot_store.core.group import WaitingWrite
    from breakpilot_store.sqlite.writer import GroupWriter

    release = threading.Event()

    async def main() -> tuple[collections.Counter[str], int, int, int, list[int]]:
        async with AsyncCheckpointStore(db_path) as store:
            managers = [AsyncCheckpointManager(f"a{i}", store=store) for i in range(100)]
            await store.create("warm", "n", {})
            blocker = asyncio.ensure_future(store.run(lambda conn: release.wait(10), write=True))
            await asyncio.sleep(0.05)  # the writer is inside it: the creates queue up
            tasks = [asyncio.ensure_future(m.create("s", {"i": 1})) for m in managers]
            await asyncio.sleep(0.05)
            objects = gc.get_objects()
            frames = collections.Counter(
                o.cr_code.co_name
                for o in objects
                if inspect.iscoroutine(o) and "breakpilot_store" in o.cr_code.co_filename
            )
            writes = sum(1 for o in objects if type(o) is WaitingWrite)
            futures = sum(1 for o in objects if type(o) is asyncio.Future)
            drops = sum(
                1
                for o in objects
                if inspect.ismethod(o) and getattr(o, "__func__", None) is GroupWriter.drop
            )
            drops += sum(  # nor a partial of the create's statements
                1
                for o in objects
                if isinstance(o, functools.partial) and o.func is operations._run_create
            )
            release.set()
            await blocker
            made = await asyncio.gather(*tasks)
            return frames, writes, futures, drops, [c.seq for c in made]

    frames, writes, futures, drops, seqs = asyncio.run(main())
    assert seqs == [1] * 100
    assert frames["create"] == 100  # the public coroutines, awaiting their writes
    # Besides them, only the blocking write's own call (store.run), not one per create.
    assert sum(n for name, n in frames.items() if name != "create") <= 2, frames
    assert writes == 101  # the creates' and the blocking write's: each its own future
    assert futures < 10  # no plain future per create beside it
    assert drops == 0


AWKWARD = [
    {"text": 'quotes " and \\ backslashes, {braces} and commas, ', "n": -0.0},
    {"nul": "a\u0000b", "emoji": "\U0001f600", "big": 2**63 - 1, "tiny": 5e-324},
    {"nested": [{"a": [1, 2, {"b": None}]}, [], {}], "bool": True, "esc": "\n\t\r"},
    {"unicode key é": "ü", "": "empty key", "null": None},
]


def test_a_groups_rows_are_stored_exactly_as_one_by_one_creates_store_them(backend_url, raw):
    """A group written in one statement (PostgreSQL: arrays unnested) keeps every byte.

    Data, metadata, names and timestamps of creates written together read back (through
    the store and at the driver, as an operator sees them) exactly as those written one
    at a time.
    """

    async def main() -> tuple[list, list]:
        async with AsyncCheckpointStore(backend_url) as store:
            alone = [
                await store.create("alone", f"n{i}", data, {"m": data})
                for i, data in enumerate(AWKWARD)
            ]
            together = await asyncio.gather(
                *(
                    store.create(f"g{i}", f"n{i}", data, {"m": data})
                    for i, data in enumerate(AWKWARD * 10)
                )
            )
            assert store.commits < len(AWKWARD) + 10  # shared commits: the group path
            read = [await store.get(c.id) for c in together]
            return alone, list(zip(together, read, strict=True))

    alone, pairs = asyncio.run(main())
    for i, (made, read) in enumerate(pairs):
        data = AWKWARD[i % len(AWKWARD)]
        assert made.data == read.data == data == alone[i % len(AWKWARD)].data
        assert read.metadata == {"m": data}
        assert (read.name, read.timestamp) == (made.name, made.timestamp)
    text = "CAST(data AS TEXT)" if raw().kind == "postgres" else "data"
    stored = dict(raw().query(f"SELECT session_id || '/' || name, {text} FROM checkpoints"))
    for i in range(len(AWKWARD) * 10):
        assert stored[f"g{i}/n{i}"] == stored[f"alone/n{i % len(AWKWARD)}"]
