"""A lease holder's lifetime: forks, event loops that end, managers dropped unclosed.

Found by a hostile campaign (round 6): a forked child wrote with its parent's token and
its ``close()`` released the parent's live lease; an async manager's heartbeat ended
with the first ``asyncio.run`` and the lease lapsed while the manager wrote on in the
next; a manager dropped without ``close()`` renewed its lease for the life of the
process; ``lease=5e-324`` made the heartbeat a busy loop of write transactions.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest

from breakpilot_store import (
    AsyncCheckpointManager,
    AsyncCheckpointStore,
    CheckpointManager,
    CheckpointStore,
    CheckpointValueError,
    LeaseLostError,
    SessionLeasedError,
)

S = "agent-7"


def _child_exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_neither_writes_nor_releases_its_parents_lease(
    backend_url: str,
    raw,  # noqa: ANN001
) -> None:
    with CheckpointStore(backend_url) as store:
        mgr = CheckpointManager(S, store=store, lease=30.0, owner="parent")
        mgr.create("parent", {})
        pid = os.fork()
        if pid == 0:  # the child: exit codes say what happened (pytest must not go on here)
            code = 0
            try:
                try:
                    mgr.create("child", {})
                    code = 10  # the fence let a second process write with one token
                except LeaseLostError as exc:
                    if "fork of the holder" not in str(exc):
                        code = 11
                mgr.close()  # must not release the parent's lease
            except BaseException:
                code = 12
            os._exit(code)
        assert _child_exit_code(pid) == 0
        assert raw().query("SELECT owner, token FROM leases") == [("parent", 1)]
        with pytest.raises(SessionLeasedError):  # still leased: anyone else is refused
            store.create(S, "intruder", {})
        assert mgr.create("parent-again", {}).seq == 2  # the parent never lost it
        assert not mgr.lease_lost
        mgr.close()
        names = raw().query("SELECT name FROM checkpoints ORDER BY seq")
        assert names == [("parent",), ("parent-again",)]
        assert raw().query("SELECT owner, token FROM leases") == [(None, 1)]


def test_an_async_child_of_a_fork_neither_writes_nor_releases(db_path) -> None:  # noqa: ANN001
    async def acquire() -> AsyncCheckpointManager:
        mgr = AsyncCheckpointManager(S, store=db_path, lease=30.0, owner="parent")
        await mgr.create("parent", {})
        return mgr

    mgr = asyncio.run(acquire())
    pid = os.fork()
    if pid == 0:

        async def child() -> int:
            try:
                await mgr.create("child", {})
                return 10
            except LeaseLostError as exc:
                code = 0 if "fork of the holder" in str(exc) else 11
            await mgr.close()
            return code

        try:
            os._exit(asyncio.run(child()))
        except BaseException:
            os._exit(12)
    assert _child_exit_code(pid) == 0

    async def parent() -> None:
        assert (await mgr.create("parent-again", {})).seq == 2
        await mgr.close()

    asyncio.run(parent())
    with CheckpointStore(db_path) as store:
        assert [c.name for c in store.list_checkpoints(S)] == ["parent", "parent-again"]


def test_the_async_heartbeat_follows_the_manager_into_the_next_event_loop(db_path) -> None:  # noqa: ANN001
    store = AsyncCheckpointStore(db_path)
    mgr = AsyncCheckpointManager(S, store=store, lease=0.6, owner="first")

    async def first_run() -> None:
        await mgr.create("one", {})

    async def second_run() -> None:
        await mgr.create("two", {})  # a write on the new loop restarts the heartbeat
        await asyncio.sleep(1.5)  # 2.5 leases: only a heartbeat keeps it
        with CheckpointStore(db_path) as other, pytest.raises(SessionLeasedError, match="'first'"):
            CheckpointManager(S, store=other, lease=5.0, owner="second")
        assert (await mgr.create("three", {})).seq == 3
        await mgr.close()
        await store.close()

    asyncio.run(first_run())
    asyncio.run(second_run())
    assert not mgr.lease_lost


def _released_within(backend_url: str, seconds: float) -> bool:
    """Whether another manager acquires without ``takeover`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    with CheckpointStore(backend_url) as store:
        while True:
            try:
                CheckpointManager(S, store=store, lease=30.0, owner="next").close()
                return True
            except SessionLeasedError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)


def test_a_manager_dropped_unclosed_gives_its_lease_back(backend_url: str, raw) -> None:  # noqa: ANN001
    def work() -> None:
        mgr = CheckpointManager(S, store=backend_url, lease=30.0, owner="dropped")
        mgr.create("x", {})

    work()
    gc.collect()
    # A 30 s lease: only a release explains an acquisition within the bound.
    assert _released_within(backend_url, 10.0)
    assert raw().query("SELECT owner, token FROM leases") == [(None, 2)]


def test_an_async_manager_dropped_unclosed_gives_its_lease_back(db_path) -> None:  # noqa: ANN001
    async def scenario() -> None:
        async with AsyncCheckpointStore(db_path) as store:

            async def work() -> None:
                mgr = AsyncCheckpointManager(S, store=store, lease=0.9, owner="dropped")
                await mgr.create("x", {})

            await work()
            gc.collect()
            await asyncio.sleep(0.6)  # its heartbeat's next turn (every 0.3 s) finds it gone
            holder = AsyncCheckpointManager(S, store=store, lease=30.0, owner="next")
            await holder.acquire_lease()  # refused if the lease were still renewed or live
            assert holder.lease_token == 2
            await holder.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("lease", [5e-324, 1e-300, 0.001, 0.0999])
def test_a_lease_below_the_minimum_is_refused_and_nothing_written(backend_url, raw, lease) -> None:  # noqa: ANN001
    with CheckpointStore(backend_url) as store:
        store.create("other", "x", {})
        before = raw().dump()
        with pytest.raises(CheckpointValueError, match="at least 0.1 seconds"):
            CheckpointManager(S, store=store, lease=lease)
        with pytest.raises(CheckpointValueError, match="at least 0.1 seconds"):
            AsyncCheckpointManager(S, store=backend_url, lease=lease)
        assert raw().dump() == before
    CheckpointManager(S, store=backend_url, lease=0.1).close()  # the minimum itself is fine
