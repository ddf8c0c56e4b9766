"""What our own hostile round 5 found in the async store, each as it was found.

* a write awaited through ``gather`` (or a task of its own) inside an import's async
  iterable hung for ever, past any ``wait_for`` (only the reading task was checked);
* on ``sqlite://`` a read from inside an import's async iterable deadlocked the store's
  one thread, and ``close()`` then hung;
* a second ``close()`` made while the first was finishing returned at once, before the
  writes already submitted had committed;
* a front over a sync store that was then closed (``AsyncCheckpointStore.wrap``) went on
  committing grouped creates, ``clear`` and imports through the closed store;
* a second cancel of an export stream while it closed blocked the event loop until the
  read in flight ended (``ThreadPoolExecutor.__exit__`` on the loop's thread);
* a failed import kept its async iterable (and a lock it held) until the cyclic garbage
  collector ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breakpilot_store import (
    AsyncCheckpointStore,
    BreakpilotStoreError,
    CheckpointStore,
    StoreBusyError,
    StoreClosedError,
)


def entry(session: str, seq: int, **data: Any) -> dict[str, Any]:
    return {
        "id": f"{session}:{seq}",
        "name": "imported",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": data,
    }


def rows(path: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT session_id, seq FROM checkpoints ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def test_writes_from_tasks_the_iterable_starts_are_refused_not_hung(tmp_path: Path) -> None:
    path = tmp_path / "a.db"

    async def scenario() -> Any:
        async with AsyncCheckpointStore(path) as store:

            async def gathered() -> Any:
                await asyncio.gather(store.create("log", "n", {}))
                yield entry("x", 1)

            with pytest.raises(StoreBusyError, match="from inside the async iterable"):
                await asyncio.wait_for(store.import_checkpoints("t", gathered()), 20)
            later: list[asyncio.Task[Any]] = []

            async def starts_a_task() -> Any:
                async def after() -> Any:
                    await asyncio.sleep(0.2)  # the import is over by then: it may write
                    return await store.create("later", "n", {})

                later.append(asyncio.create_task(after()))
                yield entry("y", 1)

            assert await asyncio.wait_for(store.import_checkpoints("u", starts_a_task()), 20) == 1
            return await asyncio.wait_for(later[0], 20)

    assert asyncio.run(scenario()).id == "later:1"
    assert rows(path) == [("later", 1), ("u", 1)]


def test_an_in_memory_store_refuses_a_call_from_inside_its_import() -> None:
    async def scenario() -> int:
        async with AsyncCheckpointStore("sqlite://") as store:
            await store.create("s", "n", {})

            async def reads() -> Any:
                with pytest.raises(StoreBusyError, match="in-memory store"):
                    await store.get_latest("s")
                yield entry("x", 1)

            imported = await asyncio.wait_for(store.import_checkpoints("t", reads()), 20)
            assert (await store.get_latest("t")).id == "t:1"
            return imported

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == 1  # and close() returned


def test_a_second_close_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "c.db"

    async def scenario() -> None:
        store = AsyncCheckpointStore(path)
        await store.open()
        writes = [
            asyncio.create_task(store.create("s", "n", {"p": "x" * 20_000})) for _ in range(300)
        ]
        await asyncio.sleep(0)
        first = asyncio.create_task(store.close())
        await asyncio.sleep(0)
        await store.close()
        assert first.done()
        assert len(rows(path)) == 300  # every write submitted before close() committed
        assert not [t for t in threading.enumerate() if t.name == "breakpilot-store-writer"]
        await asyncio.gather(*writes)

    asyncio.run(scenario())


def test_a_front_over_a_closed_sync_store_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    async def scenario() -> None:
        sync = CheckpointStore(path)
        front = AsyncCheckpointStore.wrap(sync)
        await front.create("s", "n", {})
        sync.close()
        outcomes = await asyncio.gather(
            *(front.create("s", "n", {}) for _ in range(5)), return_exceptions=True
        )
        assert [type(o) for o in outcomes] == [StoreClosedError] * 5
        with pytest.raises(StoreClosedError):
            await front.clear("s")
        with pytest.raises(StoreClosedError):
            await front.import_checkpoints("t", [entry("t", 1)])
        await front.close()

    asyncio.run(scenario())
    assert rows(path) == [("s", 1)]


def test_cancelling_a_stream_twice_never_blocks_the_loop(tmp_path: Path) -> None:
    """The stream's thread is held inside a read; two cancels, then one loop turn must
    come back while that read is still held (before: the loop joined the thread)."""
    release = threading.Event()
    inside = threading.Event()

    def make(_store: Any) -> Iterator[int]:
        yield 1
        inside.set()
        release.wait(30)
        yield 2

    async def scenario() -> bool:
        async with AsyncCheckpointStore(tmp_path / "s.db") as store:

            async def consume() -> None:
                async for _ in store._stream(make):
                    pass

            task = asyncio.create_task(consume())
            while not inside.is_set():
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.sleep(0)
            turned_while_held = not release.is_set()
            release.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return turned_while_held

    watchdog = threading.Timer(10, release.set)  # a blocked loop is let go, and fails
    watchdog.start()
    try:
        assert asyncio.run(scenario())
    finally:
        watchdog.cancel()


def test_a_failed_import_releases_its_iterable_at_once(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, bool]:
        async with AsyncCheckpointStore(tmp_path / "i.db") as store:
            lock = asyncio.Lock()

            async def holds_a_lock() -> Any:
                async with lock:
                    yield entry("t", 1)
                    yield {"not": "an entry"}
                    yield entry("t", 3)

            def plain() -> Iterator[Any]:
                try:
                    yield entry("u", 1)
                    yield {"not": "an entry"}
                finally:
                    closed.append(True)

            closed: list[bool] = []
            with contextlib.suppress(BreakpilotStoreError):
                await store.import_checkpoints("t", holds_a_lock())
            with contextlib.suppress(BreakpilotStoreError):
                await store.import_checkpoints("u", plain())
            await asyncio.sleep(0.05)
            return lock.locked(), closed == [True]

    gc.disable()  # not the collector's doing
    try:
        still_locked, plain_closed = asyncio.run(scenario())
    finally:
        gc.enable()
    assert not still_locked and plain_closed


def test_after_a_failed_import_its_iterables_tasks_write(tmp_path: Path) -> None:
    """Found reading this change again: a failed import's reader was left to the cyclic
    collector, so its mark stayed on, and a task the iterable had started was refused
    ("from inside the async iterable") long after the import was over."""

    async def scenario() -> Any:
        async with AsyncCheckpointStore(tmp_path / "m.db") as store:
            later: list[asyncio.Task[Any]] = []

            async def fails() -> Any:
                async def after() -> Any:
                    await asyncio.sleep(0.2)
                    return await store.create("later", "n", {})

                later.append(asyncio.create_task(after()))
                yield {"not": "an entry"}

            with contextlib.suppress(BreakpilotStoreError):
                await store.import_checkpoints("t", fails())
            return await asyncio.wait_for(later[0], 20)

    gc.disable()  # not the collector's doing
    try:
        assert asyncio.run(scenario()).id == "later:1"
    finally:
        gc.enable()
