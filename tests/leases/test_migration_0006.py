"""Revision 0006 (the held lease's token on the session's row): upgrade with data, and back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from alembic.script import ScriptDirectory

from breakpilot_store import CheckpointManager, CheckpointStore, LeaseLostError, SessionLeasedError
from breakpilot_store.migrate import HEAD, alembic_config, downgrade, upgrade
from tests.migration_support import at_revision

REVISION = "0006"
T0 = datetime.fromisoformat("2026-01-01T00:00:00.000000+00:00")
FAR = T0 + timedelta(days=36500)  # a lease that is still live when the test runs


def previous() -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


def _stamp(db, when: datetime):  # noqa: ANN001, ANN202
    return when.isoformat(timespec="microseconds") if db.kind == "sqlite" else when


def _at_previous_with_data(url: str, raw) -> None:  # noqa: ANN001
    at_revision(url, previous())
    db = raw()
    t0, far = _stamp(db, T0), _stamp(db, FAR)
    for sid in ("held", "released", "expired", "plain"):
        db.execute(
            "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at)"
            " VALUES (?, 1, 1, ?, ?)",
            (sid, t0, t0),
        )
        db.execute(
            "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
            " VALUES (?, 1, 'n', ?, '{}', '{}')",
            (sid, t0),
        )
    leases = [
        ("held", "h:1", 3, far),  # live: an unleased writer is refused
        ("released", None, 2, None),
        ("expired", "e:1", 5, t0),  # still its holder's, but anyone may write
    ]
    for sid, owner, token, expires in leases:
        db.execute(
            "INSERT INTO leases (session_id, owner, token, acquired_at, renewed_at, "
            "expires_at, duration) VALUES (?, ?, ?, ?, ?, ?, 30.0)",
            (sid, owner, token, t0, t0, expires),
        )


def _tokens(db) -> dict[str, int | None]:  # noqa: ANN001
    return dict(db.query("SELECT session_id, lease_token FROM sessions ORDER BY session_id"))


def test_upgrade_fills_the_token_of_held_leases_and_changes_nothing_else(
    backend_url: str,
    raw,  # noqa: ANN001
) -> None:
    _at_previous_with_data(backend_url, raw)
    before = raw().dump()
    leases_before = raw().query("SELECT * FROM leases ORDER BY session_id")
    with CheckpointStore(backend_url) as store:  # upgrades to head
        db = raw()
        assert db.query("SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert db.dump() == before
        assert db.query("SELECT * FROM leases ORDER BY session_id") == leases_before
        assert _tokens(db) == {"expired": 5, "held": 3, "plain": None, "released": None}
        with pytest.raises(SessionLeasedError, match="'h:1'"):
            store.create("held", "x", {})
        for sid in ("released", "expired", "plain"):
            assert store.create(sid, "x", {}).id == f"{sid}:2"
        # A takeover of the expired lease moves the token on the row; its old holder
        # is fenced.
        with CheckpointManager("expired", store=store, lease=30.0, owner="new") as mgr:
            assert _tokens(raw())["expired"] == 6
            assert mgr.create("y", {}).id == "expired:3"
        assert _tokens(raw())["expired"] is None


def test_downgrade_drops_the_column_and_keeps_everything_else(backend_url: str, raw) -> None:  # noqa: ANN001
    with CheckpointStore(backend_url) as store:
        mgr = CheckpointManager("a", store=store, lease=30.0, owner="holder")
        mgr.create("n", {"i": 1})
        before = raw().dump()
        downgrade(store.engine, previous())
        db = raw()
        assert db.query("SELECT version_num FROM alembic_version") == [(previous(),)]
        assert db.dump() == before
        if db.kind == "sqlite":
            columns = {r[1] for r in db.query("PRAGMA table_info(sessions)")}
        else:
            columns = {
                r[0]
                for r in db.query(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'sessions'"
                )
            }
        assert "lease_token" not in columns and "base_seq" in columns
        upgrade(store.engine, HEAD)  # and up again: the held lease is on the row again
        assert _tokens(raw()) == {"a": 1}
        with pytest.raises(SessionLeasedError, match="'holder'"):
            store.create("a", "x", {})
        new = CheckpointManager("a", store=store, lease=30.0, owner="new", takeover=True)
        assert _tokens(raw()) == {"a": 2}
        new.create("n", {"i": 2})
        with pytest.raises(LeaseLostError):
            mgr.create("zombie", {})
        new.close()
        mgr.close()
    assert [r[0] for r in raw().query("SELECT name FROM checkpoints ORDER BY seq")] == ["n", "n"]
