"""Hostile use of the async API on PostgreSQL (round 3 of the campaign; the rest of it,
on both backends, is tests/reliability/test_hostile_async.py).

Found: cancelling an import returned at once while the import committed later, behind
the caller's next read; a store used from a second ``asyncio.run`` waited forever for
the first loop's writer task and connections.
"""

from __future__ import annotations

import asyncio

import pytest

from breakpilot_store import AsyncCheckpointStore, CheckpointStore
from tests.reliability.test_hostile_async import _entry


def test_a_cancelled_import_on_postgres_waits_for_its_outcome(pg_url):
    entries = [_entry("pg-imp", i) for i in range(1, 20_001)]

    async def main() -> tuple[int, int]:
        async with AsyncCheckpointStore(pg_url) as store:
            task = asyncio.create_task(store.import_checkpoints("pg-imp", entries))
            await asyncio.sleep(0.05)
            task.cancel()
            try:
                written = await task
            except asyncio.CancelledError:
                written = -1
            seen = await store.count("pg-imp")
            await asyncio.sleep(1.0)
            return written, seen, await store.count("pg-imp")

    written, seen, later = asyncio.run(main())
    # Whatever happened had happened when the cancellation reached the caller.
    assert seen == later, (written, seen, later)
    assert seen in (0, 20_000)


def test_a_postgres_store_from_another_event_loop_is_refused_not_hung(pg_url):
    # (A SQLite store serves any loop: tests/reliability/test_hostile_async.py.)
    from breakpilot_store import StoreUnavailableError

    store = AsyncCheckpointStore(pg_url)
    assert asyncio.run(store.create("s", "n", {})).seq == 1

    async def second_loop() -> None:
        # Its writer task and connections live on the first loop, which has ended: a
        # write waited for a task that never runs again, a read for a dead connection.
        with pytest.raises(StoreUnavailableError, match="one AsyncCheckpointStore per event loop"):
            await asyncio.wait_for(store.create("s", "n", {}), 30)
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.count("s"), 30)

    asyncio.run(second_loop())
    asyncio.run(asyncio.wait_for(store.close(), 30))  # from a third loop: it closes
    with CheckpointStore(pg_url) as sync:
        assert sync.count("s") == 1  # the refused write wrote nothing


def test_close_on_postgres_lets_calls_waiting_for_the_open_finish(pg_url, pg_raw):
    """As on SQLite (tests/test_async.py): calls made before close() are not refused."""
    from breakpilot_store.errors import StoreClosedError

    async def main() -> list[int]:
        store = AsyncCheckpointStore(pg_url)
        creates = [asyncio.ensure_future(store.create("pg-w", f"n{i}", {})) for i in range(10)]
        await asyncio.sleep(0)
        await store.close()
        made = await asyncio.gather(*creates)
        with pytest.raises(StoreClosedError):
            await store.create("pg-w", "late", {})
        return [c.seq for c in made]

    assert asyncio.run(main()) == list(range(1, 11))
    rows = pg_raw("SELECT seq, name FROM checkpoints WHERE session_id = 'pg-w' ORDER BY seq")
    assert [tuple(r) for r in rows] == [(i + 1, f"n{i}") for i in range(10)]
