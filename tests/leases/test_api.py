"""Leases through the public API on both backends, checked through a raw connection."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

from breakpilot_store import (
    BreakpilotStoreError,
    CheckpointManager,
    CheckpointStore,
    CheckpointTypeError,
    CheckpointValueError,
    LeaseLostError,
    SessionLeasedError,
)
from breakpilot_store.leasing import default_owner

S = "agent-7"


def manager(store: CheckpointStore, **kwargs) -> CheckpointManager:  # noqa: ANN003
    return CheckpointManager(S, store=store, compress_after=1000, max_checkpoints=1000, **kwargs)


def lease_row(db) -> tuple:  # noqa: ANN001
    rows = db.query("SELECT owner, token FROM leases WHERE session_id = ?", (S,))
    return rows[0] if rows else None


def test_errors_are_typed_and_exported() -> None:
    assert issubclass(SessionLeasedError, BreakpilotStoreError)
    assert issubclass(LeaseLostError, BreakpilotStoreError)


def test_acquire_refuse_release_and_the_token_grows(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        first = manager(store, lease=30.0)
        assert first.lease_token == 1
        assert lease_row(raw()) == (default_owner(), 1)
        with pytest.raises(SessionLeasedError) as info:
            manager(store, lease=30.0, owner="other")
        err = info.value
        assert (err.session_id, err.owner, err.token) == (S, default_owner(), 1)
        assert isinstance(err.expires_at, datetime) and err.expires_at.tzinfo is not None
        assert default_owner() in str(err) and err.expires_at.isoformat() in str(err)
        first.close()
        assert lease_row(raw()) == (None, 1)  # released; the token stays
        second = manager(store, lease=30.0, owner="second")
        assert second.lease_token == 2
        second.close()
        store.delete_session(S)  # the lease row (and its token) outlives the session
        third = manager(store, lease=30.0)
        assert third.lease_token == 3
        third.close()


def test_writes_by_anyone_else_are_refused_reads_are_not(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=30.0, owner="holder")
        for i in range(3):
            holder.create("step", {"i": i})
        other = manager(store)  # no lease: its writes are refused, its reads are not
        before = raw().dump()
        refused = [
            lambda: store.create(S, "x", {}),
            lambda: other.create("x", {}),
            lambda: other.clear(),
            lambda: other.import_checkpoints(
                '[{"id": "z:1", "name": "x", '
                '"timestamp": "2026-01-01T00:00:00+00:00", "data": {}, "metadata": {}}]'
            ),
            lambda: store.clear(S),
            lambda: store.compress(S, compress_after=1),
            lambda: store.delete_session(S),
            lambda: store.import_checkpoints(S, []),
        ]
        for write in refused:
            with pytest.raises(SessionLeasedError, match="'holder'"):
                write()
        assert raw().dump() == before  # nothing written
        assert [c.data for c in other.get_all()] == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert other.get_latest().data == {"i": 2} and len(other) == 3
        assert store.list_checkpoints(S)[0].id == f"{S}:1"
        assert other.export().count('"name"') == 3
        # Other sessions are not affected.
        assert store.create("elsewhere", "x", {}).id == "elsewhere:1"
        # The holder still writes; after close() anyone may again.
        assert holder.create("step", {}).id == f"{S}:4"
        holder.close()
        assert store.create(S, "x", {}).id == f"{S}:5"


def test_force_writes_through_a_lease(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=30.0)
        for i in range(4):
            holder.create("step", {"i": i})
        assert len(store.compress(S, compress_after=1, max_checkpoints=2, force=True)) == 2
        assert store.import_checkpoints(S, [], force=True) == 0
        assert store.clear(S, force=True) == 2
        assert holder.create("step", {}).id == f"{S}:5"  # the holder keeps its lease
        assert store.delete_session(S, force=True) == 1
        assert raw().query("SELECT count(*) FROM checkpoints") == [(0,)]
        assert holder.create("again", {}).id == f"{S}:1"  # still its lease: token current
        holder.close()


def test_a_takeover_fences_the_old_holder_in_every_write(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        old = manager(store, lease=60.0, owner="old")
        for i in range(5):  # warm: on SQLite the later ones take the one-statement path
            old.create("step", {"i": i})
        heard: list[LeaseLostError] = []
        old.on_lease_lost(heard.append)
        new = manager(store, lease=60.0, takeover=True, owner="new")
        assert new.lease_token == 2
        before = raw().dump()
        with pytest.raises(LeaseLostError) as info:
            old.create("zombie", {})
        assert (info.value.token, info.value.current_token, info.value.current_owner) == (
            1,
            2,
            "new",
        )
        assert "token 1" in str(info.value) and "'new'" in str(info.value)
        for write in (old.clear, lambda: old.import_checkpoints("[]"), lambda: old.create("z", {})):
            with pytest.raises(LeaseLostError):
                write()
        assert raw().dump() == before
        assert old.lease_lost and len(heard) == 1  # the callback heard it once
        assert new.create("step", {}).id == f"{S}:6"
        old.close()  # releases nothing: the lease is not its own
        assert lease_row(raw()) == ("new", 2)
        new.close()


def test_the_guard_alone_refuses_a_stale_token(backend_url: str, raw) -> None:
    """Even a holder that never learned of the loss is refused by the write's own check."""
    with CheckpointStore(backend_url) as store:
        old = manager(store, lease=60.0)
        old.create("step", {})
        old._lease._stop.set()  # noqa: SLF001  (no heartbeat: only the write can tell)
        raw().execute("UPDATE leases SET token = token + 1")  # a takeover, as a raw row
        with pytest.raises(LeaseLostError):
            old.create("zombie", {})
        raw().execute("UPDATE leases SET token = token - 1, owner = NULL")  # released
        old._lease.lost = False  # noqa: SLF001  (forget what the first refusal taught it)
        with pytest.raises(LeaseLostError, match="released"):
            old.create("zombie", {})
        assert raw().query("SELECT count(*) FROM checkpoints") == [(1,)]


def test_the_heartbeat_keeps_it_and_an_operator_release_is_heard(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=1.0)
        lost = threading.Event()
        holder.on_lease_lost(lambda exc: lost.set())
        time.sleep(2.5)  # 2.5 leases: only renewals keep it
        with pytest.raises(SessionLeasedError):
            manager(store, lease=1.0, owner="other")
        assert holder.create("step", {}).id == f"{S}:1"
        raw().execute("UPDATE leases SET owner = NULL, expires_at = NULL")  # lease release
        assert lost.wait(5)  # the heartbeat heard it (within a beat, 0.33 s)
        with pytest.raises(LeaseLostError):
            holder.create("step", {})
        holder.close()


def test_an_expired_lease_lets_others_write_and_wait(backend_url: str) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=0.5)
        holder._lease._stop.set()  # noqa: SLF001  (a frozen holder: no renewals)
        time.sleep(0.9)
        assert store.create(S, "x", {}).id == f"{S}:1"
        # An expired but not taken lease: its holder's token is still current.
        assert holder.create("step", {}).id == f"{S}:2"
        began = time.monotonic()
        waiter = manager(store, lease=5.0, lease_wait=5.0)  # renewed just now: waits
        assert time.monotonic() - began >= 0.2
        assert waiter.lease_token == 2
        waiter.close()


def test_lease_wait_runs_out_with_a_named_holder(backend_url: str) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=30.0, owner="holder")
        began = time.monotonic()
        with pytest.raises(SessionLeasedError, match="'holder'"):
            manager(store, lease=30.0, lease_wait=0.4)
        assert 0.4 <= time.monotonic() - began < 5
        holder.close()


def test_prune_keeps_leased_sessions_unless_forced(backend_url: str, raw) -> None:
    with CheckpointStore(backend_url) as store:
        holder = manager(store, lease=30.0)
        holder.create("step", {})
        store.create("idle", "x", {})
        raw().age("2020-01-01T00:00:00+00:00")
        assert store.prune_sessions(timedelta(days=1), dry_run=True) == [("idle", 1)]
        assert store.prune_sessions(timedelta(days=1)) == [("idle", 1)]
        assert store.prune_sessions(timedelta(days=1), force=True) == [(S, 1)]
        holder.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lease": 0}, CheckpointValueError, "lease must be"),
        ({"lease": -1.0}, CheckpointValueError, "lease must be"),
        ({"lease": float("inf")}, CheckpointValueError, "lease must be"),
        ({"lease": "30"}, CheckpointTypeError, "lease must be a number"),
        ({"lease": 30, "lease_wait": -1}, CheckpointValueError, "lease_wait"),
        ({"lease": 30, "takeover": 1}, CheckpointTypeError, "takeover must be a bool"),
        ({"lease": 30, "owner": ""}, CheckpointValueError, "owner must not be empty"),
        ({"lease": 30, "owner": 7}, CheckpointTypeError, "owner must be a str"),
        ({"lease_wait": 5}, CheckpointValueError, "need lease="),
        ({"takeover": True}, CheckpointValueError, "need lease="),
    ],
)
def test_bad_lease_arguments_are_typed_errors(backend_url: str, raw, kwargs, error, match) -> None:  # noqa: ANN001
    with CheckpointStore(backend_url) as store:
        with pytest.raises(error, match=match):
            manager(store, **kwargs)
    assert raw().query("SELECT count(*) FROM leases") == [(0,)]


def test_a_manager_that_owns_its_store_releases_then_closes(backend_url: str, raw) -> None:
    with CheckpointManager(S, store=backend_url, lease=30.0) as mgr:
        mgr.create("step", {})
        assert raw().query(
            "SELECT lease_owner, lease_token FROM session_overview WHERE session_id = ?", (S,)
        ) == [(default_owner(), 1)]
    assert lease_row(raw()) == (None, 1)
    assert mgr.store.closed


def test_a_warm_unleased_writer_is_refused_once_a_lease_is_taken(backend_url: str, raw) -> None:
    """The one-statement create's proof (SQLite) ends with the acquisition's commit."""
    with CheckpointStore(backend_url) as store, CheckpointStore(backend_url) as other:
        for i in range(5):  # warm: the later ones skip the lease check, proven unchanged
            store.create(S, "step", {"i": i})
        holder = manager(other, lease=30.0, owner="holder")
        before = raw().dump()
        for _ in range(2):
            with pytest.raises(SessionLeasedError, match="'holder'"):
                store.create(S, "step", {})
        assert raw().dump() == before
        holder.close()
        assert store.create(S, "step", {}).id == f"{S}:6"
