"""The asyncio lease holder (for the async manager) on both backends."""

from __future__ import annotations

import asyncio

import pytest

from breakpilot_store import AsyncCheckpointStore, LeaseLostError, SessionLeasedError
from breakpilot_store.aio_leasing import AsyncLeaseHolder

S = "agent-7"


def test_acquire_heartbeat_takeover_and_release(backend_url: str, raw) -> None:  # noqa: ANN001
    async def scenario() -> None:
        async with AsyncCheckpointStore(backend_url) as astore:
            first = AsyncLeaseHolder(astore, S, 0.6, owner="first")
            await first.acquire()
            assert first.token == 1
            heard: list[LeaseLostError] = []
            first.on_lost(heard.append)
            await asyncio.sleep(1.5)  # 2.5 leases: only the heartbeat task keeps it
            second = AsyncLeaseHolder(astore, S, 0.6, owner="second")
            with pytest.raises(SessionLeasedError, match="'first'"):
                await second.acquire()
            store = astore.sync_store
            assert store.clear(S, fence=first) == 0  # the holder's fence writes
            with pytest.raises(SessionLeasedError):
                store.create(S, "x", {})
            thief = AsyncLeaseHolder(astore, S, 30.0, owner="thief", takeover=True)
            await thief.acquire()
            assert thief.token == 2
            for _ in range(50):  # the first's heartbeat (every 0.2 s) hears of it
                if heard:
                    break
                await asyncio.sleep(0.1)
            assert first.lost and len(heard) == 1 and heard[0].current_owner == "thief"
            with pytest.raises(LeaseLostError):
                store.clear(S, fence=first)
            await first.release()  # not its lease any more: releases nothing
            assert raw().query("SELECT owner, token FROM leases") == [("thief", 2)]
            await thief.release()
            assert raw().query("SELECT owner, token FROM leases") == [(None, 2)]
            waiter = AsyncLeaseHolder(astore, S, 5.0, wait=1.0)
            await waiter.acquire()
            assert waiter.token == 3
            await waiter.release()

    asyncio.run(scenario())


def test_async_manager_lease_holds_through_group_commits(backend_url: str, raw) -> None:  # noqa: ANN001
    from breakpilot_store import AsyncCheckpointManager

    async def scenario() -> None:
        async with AsyncCheckpointStore(backend_url) as astore:
            holder = AsyncCheckpointManager(
                S, store=astore, lease=30.0, owner="holder", compress_after=1000
            )
            assert holder.lease_token is None  # the constructor does no I/O
            async with holder:
                assert holder.lease_token == 1
                # Many at once: they share group commits (the creates' bulk path).
                made = await asyncio.gather(*(holder.create("step", {"i": i}) for i in range(20)))
                assert sorted(cp.seq for cp in made) == list(range(1, 21))
                refused = await asyncio.gather(
                    *(astore.create(S, "x", {}) for _ in range(8)), return_exceptions=True
                )
                assert all(isinstance(r, SessionLeasedError) for r in refused), refused
                other = AsyncCheckpointManager(S, store=astore, lease=30.0, owner="other")
                with pytest.raises(SessionLeasedError, match="'holder'"):
                    await other.acquire_lease()
                thief = AsyncCheckpointManager(
                    S, store=astore, lease=30.0, takeover=True, owner="thief"
                )
                await thief.acquire_lease()
                assert thief.lease_token == 2
                lost = await asyncio.gather(
                    *(holder.create("zombie", {}) for _ in range(8)), return_exceptions=True
                )
                assert all(isinstance(r, LeaseLostError) for r in lost), lost
                assert holder.lease_lost
                assert (await thief.create("step", {})).seq == 21
                await thief.close()
            assert raw().query("SELECT count(*) FROM checkpoints WHERE name <> 'step'") == [(0,)]
            assert raw().query("SELECT owner, token FROM leases") == [(None, 2)]

    asyncio.run(scenario())


def test_concurrent_first_writes_share_one_acquisition(backend_url: str, raw) -> None:  # noqa: ANN001
    """Found by our hostile round 5: of two first writes at once, the second was refused
    by the first's live lease (naming its own manager); with ``takeover`` both acquired
    (token 2), and a heartbeat left running reported a loss after ``close()``."""
    from breakpilot_store import AsyncCheckpointManager

    async def scenario() -> None:
        async with AsyncCheckpointStore(backend_url) as astore:
            for session, kwargs in (("plain", {}), ("taken", {"takeover": True})):
                mgr = AsyncCheckpointManager(session, store=astore, lease=0.6, **kwargs)
                heard: list[LeaseLostError] = []
                mgr.on_lease_lost(heard.append)
                made = await asyncio.gather(*(mgr.create("n", {"i": i}) for i in range(5)))
                assert sorted(cp.seq for cp in made) == [1, 2, 3, 4, 5]
                assert mgr.lease_token == 1
                beats = [t for t in asyncio.all_tasks() if t.get_name().endswith(session)]
                assert len(beats) == 1
                await mgr.close()
                await asyncio.sleep(0.5)  # more than a heartbeat's interval
                assert heard == [] and beats[0].done()
        assert raw().query("SELECT session_id, owner, token FROM leases ORDER BY 1") == [
            ("plain", None, 1),
            ("taken", None, 1),
        ]

    asyncio.run(scenario())


def test_an_acquisition_whose_caller_is_cancelled_is_kept_then_released(db_path) -> None:  # noqa: ANN001
    """Found by our hostile round 5: cancelled after the writer committed it, the
    acquisition was forgotten: the manager was refused by its own lease, and close()
    released nothing (the lease stood until it expired)."""
    import contextlib
    import sqlite3

    from breakpilot_store import AsyncCheckpointManager

    async def scenario() -> None:
        async with AsyncCheckpointStore(db_path) as astore:
            await astore.create(S, "before", {})
            raw = sqlite3.connect(db_path, isolation_level=None)
            raw.execute("BEGIN IMMEDIATE")  # the writer waits here, holding the acquisition
            mgr = AsyncCheckpointManager(S, store=astore, lease=30.0, owner="me")
            task = asyncio.create_task(mgr.acquire_lease())
            await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.sleep(0.05)
            raw.execute("ROLLBACK")
            raw.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert (await mgr.create("after", {})).seq == 2  # its own lease: no refusal
            await mgr.close()
        check = sqlite3.connect(db_path)
        try:
            assert check.execute("SELECT owner, token FROM leases").fetchall() == [(None, 1)]
        finally:
            check.close()

    asyncio.run(scenario())
