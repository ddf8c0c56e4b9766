"""How the async store's writer thread wakes its callers' event loops (core/loopwake).

On Linux each loop gets one eventfd that the writer thread signals; elsewhere (or on a
loop without ``add_reader``) ``call_soon_threadsafe``. Either way every caller gets its
outcome, on every loop, on both backends.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest

from breakpilot_store import AsyncCheckpointManager, AsyncCheckpointStore, CheckpointValueError
from breakpilot_store.core import loopwake

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
