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
