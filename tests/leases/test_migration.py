"""Revision 0003 (leases) upgrades a database holding data, and downgrades cleanly."""

from __future__ import annotations

from datetime import datetime

from alembic.script import ScriptDirectory

from breakpilot_store import CheckpointManager, CheckpointStore, SessionLeasedError
from breakpilot_store.migrate import HEAD, alembic_config, downgrade
from tests.migration_support import at_revision

REVISION = "0003"
T0 = "2026-01-01T00:00:00.000000+00:00"


def previous() -> str:
    """The revision 0003 upgrades from (its down_revision, wherever the chain goes)."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


def _at_previous_with_data(url: str, raw) -> None:  # noqa: ANN001
    at_revision(url, previous())
    db = raw()
    stamp = T0 if db.kind == "sqlite" else datetime.fromisoformat(T0)
    db.execute(
        "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at)"
        " VALUES (?, 3, 2, ?, ?), (?, 0, 0, ?, ?)",
        ("a", stamp, stamp, "b", stamp, stamp),
    )
    for seq in (2, 3, 4):  # 4 is a create above the base
        db.execute(
            "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("a", seq, f"n{seq}", stamp, f'{{"seq": {seq}}}', "{}"),
        )


def test_upgrade_with_data_keeps_it_and_adds_leases(backend_url: str, raw) -> None:  # noqa: ANN001
    _at_previous_with_data(backend_url, raw)
    before = raw().dump()
    with CheckpointStore(backend_url) as store:  # upgrades to head
        assert raw().dump() == before  # not a row changed
        assert {i.session_id: (i.checkpoints, i.last_seq) for i in store.list_sessions()} == {
            "a": (3, 4),
            "b": (0, 0),
        }
        db = raw()
        assert db.query("SELECT count(*) FROM leases") == [(0,)]
        rows = db.query(
            "SELECT session_id, checkpoints, last_seq, lease_owner, lease_token, "
            "lease_expires_at, leased FROM session_overview ORDER BY session_id"
        )
        assert [r[:6] for r in rows] == [
            ("a", 3, 4, None, None, None),
            ("b", 0, 0, None, None, None),
        ]
        assert [bool(r[6]) for r in rows] == [False, False]
        mgr = CheckpointManager("a", store=store, lease=30.0, owner="after-upgrade")
        assert mgr.create("next", {}).id == "a:5"
        try:
            store.create("a", "x", {})
        except SessionLeasedError:
            pass
        else:
            raise AssertionError("a store-level create went through a live lease")
        assert raw().query(
            "SELECT lease_owner, lease_token, leased FROM session_overview WHERE session_id = 'a'"
        ) in ([("after-upgrade", 1, 1)], [("after-upgrade", 1, True)])
        mgr.close()
    assert raw().query("SELECT version_num FROM alembic_version") == [(HEAD,)]


def test_downgrade_drops_the_leases_and_keeps_the_checkpoints(backend_url: str, raw) -> None:  # noqa: ANN001
    with CheckpointStore(backend_url) as store:
        with CheckpointManager("a", store=store, lease=30.0) as mgr:
            mgr.create("n", {"i": 1})
            mgr.create("n", {"i": 2})
        downgrade(store.engine, previous())
    db = raw()
    assert db.query("SELECT version_num FROM alembic_version") == [(previous(),)]
    assert db.query("SELECT session_id, checkpoints, last_seq FROM session_overview") == [
        ("a", 2, 2)
    ]
    if db.kind == "sqlite":
        names = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        names = {
            r[0]
            for r in db.query(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
    assert "leases" not in names and "checkpoints" in names
    with CheckpointStore(backend_url) as store:  # and up again
        assert CheckpointManager("a", store=store, lease=5.0).create("n", {}).id == "a:3"
