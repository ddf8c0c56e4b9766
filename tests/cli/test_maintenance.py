"""compress, delete, prune, db upgrade|current|check, doctor, vacuum."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

from breakpilot_store import CheckpointStore
from breakpilot_store.migrate import HEAD

from .conftest import one_line_error, raw_rows


def _execute(path, *statements):
    conn = sqlite3.connect(path)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _seqs(path, session):
    rows = raw_rows(
        path, "SELECT seq FROM checkpoints WHERE session_id = ? ORDER BY seq", (session,)
    )
    return [r[0] for r in rows]


def _make_long(path, n=30):
    with CheckpointStore(path) as store:
        for i in range(n):
            store.create("long", f"n{i % 3}", {"i": i})


def test_compress_dry_run_then_real(run, db):
    _make_long(db)
    result = run("--db", db, "compress", "long", "--compress-after", "5", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "would remove 6 checkpoints from session 'long': seq 2-7"
    assert _seqs(db, "long") == list(range(1, 31))
    result = run("--db", db, "--json", "compress", "long", "--compress-after", "5")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got == {
        "session_id": "long",
        "dry_run": False,
        "removed": [f"long:{i}" for i in range(2, 8)],
    }
    assert _seqs(db, "long") == [1, *range(8, 31)]
    # The counter as the README derives it from the row: nothing above base_seq now.
    assert raw_rows(db, "SELECT base_seq, base_count FROM sessions WHERE session_id='long'") == [
        (30, 24)
    ]


def test_compress_with_cap(run, db):
    _make_long(db)
    result = run("--db", db, "compress", "long", "--compress-after", "50", "--max-checkpoints", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "removed 26 checkpoints from session 'long': seq 2-27"
    assert _seqs(db, "long") == [1, 28, 29, 30]


def test_compress_nothing_to_do(run, db):
    result = run("--db", db, "compress", "alpha")
    assert result.exit_code == 0
    assert result.stdout.strip() == "nothing to remove: session 'alpha' holds 5"


def test_compress_errors(run, db):
    result = run("--db", db, "compress", "nobody")
    assert result.exit_code == 1
    assert "no session 'nobody'" in one_line_error(result)
    assert raw_rows(db, "SELECT count(*) FROM sessions WHERE session_id='nobody'") == [(0,)]
    assert run("--db", db, "compress", "alpha", "--compress-after", "0").exit_code == 2
    assert run("--db", db, "compress", "alpha", "--max-checkpoints", "x").exit_code == 2


def test_delete_needs_yes(run, db):
    result = run("--db", db, "delete", "beta")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert _seqs(db, "beta") == [1, 2]


def test_delete_dry_run_and_real(run, db):
    result = run("--db", db, "delete", "beta", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.strip() == "would delete session 'beta' (2 checkpoints)"
    assert _seqs(db, "beta") == [1, 2]
    result = run("--db", db, "delete", "beta", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "deleted session 'beta' (2 checkpoints)"
    assert raw_rows(db, "SELECT count(*) FROM sessions WHERE session_id='beta'") == [(0,)]
    assert _seqs(db, "beta") == []
    assert _seqs(db, "alpha") == [1, 2, 3, 4, 5]


def test_delete_json_and_unknown(run, db):
    result = run("--db", db, "--json", "delete", "gamma-long", "-y")
    assert json.loads(result.stdout) == {
        "dry_run": False,
        "sessions": [{"session_id": "gamma-long", "checkpoints": 1}],
    }
    result = run("--db", db, "delete", "gamma-long", "-y")
    assert result.exit_code == 1
    assert "no session 'gamma-long'" in one_line_error(result)
    result = run("--db", db, "delete", "gamma-long", "--dry-run")
    assert result.exit_code == 1


def _age(path, session, days):
    # A session's last write is its newest checkpoint's time, or its row's base_at.
    old = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="microseconds")
    _execute(
        path,
        f"UPDATE sessions SET base_at = '{old}' WHERE session_id = '{session}'",
        f"UPDATE checkpoints SET created_at = '{old}' WHERE session_id = '{session}'",
    )


def test_prune_removes_only_idle_sessions(run, db):
    _age(db, "alpha", 40)
    _age(db, "beta", 10)
    result = run("--db", db, "prune", "--idle-for", "30d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "would delete session 'alpha' (5 checkpoints)"
    assert len(raw_rows(db, "SELECT * FROM sessions")) == 3
    result = run("--db", db, "prune", "--idle-for", "1w", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "deleted session 'alpha' (5 checkpoints)",
        "deleted session 'beta' (2 checkpoints)",
        "deleted 2 sessions, 7 checkpoints",
    ]
    assert raw_rows(db, "SELECT session_id FROM sessions") == [("gamma-long",)]
    assert raw_rows(db, "SELECT DISTINCT session_id FROM checkpoints") == [("gamma-long",)]


def test_prune_prefix_json_and_nothing(run, db):
    _age(db, "alpha", 40)
    _age(db, "beta", 40)
    result = run("--db", db, "--json", "prune", "--idle-for", "30d", "--prefix", "b", "-y")
    assert json.loads(result.stdout)["sessions"] == [{"session_id": "beta", "checkpoints": 2}]
    result = run("--db", db, "prune", "--idle-for", "12h", "--prefix", "gamma", "--yes")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no sessions to delete"


def test_prune_usage_errors(run, db):
    _age(db, "alpha", 40)
    for args in (
        ["prune", "--idle-for", "30d"],  # no --yes
        ["prune", "--yes"],  # no --idle-for
        ["prune", "--idle-for", "30", "--yes"],
        ["prune", "--idle-for", "0d", "--yes"],
        ["prune", "--idle-for", "d", "--yes"],
        ["prune", "--idle-for", "-5m", "--yes"],
    ):
        result = run("--db", db, *args)
        assert result.exit_code == 2, args
    assert len(raw_rows(db, "SELECT * FROM sessions")) == 3


def test_db_upgrade_creates_then_reports_head(run, tmp_path):
    path = tmp_path / "new.db"
    result = run("--db", path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert f"from an empty database to {HEAD}" in result.stdout
    assert raw_rows(path, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    views = raw_rows(path, "SELECT name FROM sqlite_master WHERE type='view' ORDER BY name")
    assert views == [("checkpoint_overview",), ("session_overview",)]
    result = run("--db", path, "db", "upgrade")
    assert "already at revision" in result.stdout
    result = run("--db", path, "--json", "db", "upgrade")
    assert json.loads(result.stdout)["from"] == HEAD


def test_db_current(run, db, tmp_path):
    result = run("--db", db, "db", "current")
    assert result.stdout.strip() == f"{HEAD} (head)"
    result = run("--db", db, "--json", "db", "current")
    assert json.loads(result.stdout) == {
        "database": str(db),
        "revision": HEAD,
        "head": HEAD,
        "status": "head",
    }
    empty = tmp_path / "empty.db"
    _execute(empty, "CREATE TABLE unrelated (x)")
    result = run("--db", empty, "db", "current")
    assert result.exit_code == 0
    assert result.stdout.startswith("none (no schema")
    _execute(db, "UPDATE alembic_version SET version_num = '9999'")
    result = run("--db", db, "db", "current")
    assert result.stdout.startswith("9999 (newer than")
    result = run("--db", tmp_path / "missing.db", "db", "current")
    assert result.exit_code == 1


def test_db_check(run, db, tmp_path):
    result = run("--db", db, "db", "check")
    assert result.exit_code == 0, result.output
    assert "matching the code" in result.stdout
    _execute(db, "DROP INDEX ix_checkpoints_session_id_name_seq")
    result = run("--db", db, "db", "check")
    assert result.exit_code == 1
    assert "ix_checkpoints_session_id_name_seq" in one_line_error(result)
    empty = tmp_path / "empty.db"
    _execute(empty, "CREATE TABLE unrelated (x)")
    result = run("--db", empty, "db", "check")
    assert result.exit_code == 1
    assert "not head" in one_line_error(result)


def test_newer_schema_is_refused_with_both_revisions(run, db):
    _execute(db, "UPDATE alembic_version SET version_num = '9999'")
    for args in (["sessions"], ["list", "alpha"], ["delete", "alpha", "-y"], ["db", "upgrade"]):
        result = run("--db", db, *args)
        assert result.exit_code == 1, args
        line = one_line_error(result)
        assert "'9999'" in line and HEAD in line, line
    assert _seqs(db, "alpha") == [1, 2, 3, 4, 5]


def test_write_commands_do_not_create_or_migrate(run, tmp_path):
    for args in (["delete", "x", "-y"], ["prune", "--idle-for", "1d", "-y"], ["vacuum"]):
        result = run("--db", tmp_path / "none.db", *args)
        assert result.exit_code == 1, args
        assert "no database at" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "empty.db"
    _execute(empty, "CREATE TABLE unrelated (x)")
    result = run("--db", empty, "compress", "x")
    assert result.exit_code == 1
    assert "db upgrade" in one_line_error(result)
    assert raw_rows(empty, "SELECT name FROM sqlite_master") == [("unrelated",)]


def test_doctor_healthy(run, db):
    result = run("--db", db, "doctor")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for label in (
        "SQLite library",
        "schema revision",
        "integrity_check",
        "WAL size",
        "file size",
        "pages",
        "journal mode",
        "session counters",
    ):
        assert label in out, label
    assert out.strip().endswith("no problems found")
    assert "PROBLEM" not in out
    got = json.loads(run("--db", db, "--json", "doctor").stdout)
    assert got["ok"] is True
    checks = {c["check"]: c for c in got["checks"]}
    assert checks["integrity_check"] == {"check": "integrity_check", "value": "ok", "status": "ok"}
    assert checks["contents"]["value"] == "3 sessions, 8 checkpoints"


def test_doctor_finds_counters_out_of_step(run, db):
    _execute(db, "UPDATE sessions SET base_count = 99 WHERE session_id = 'beta'")
    result = run("--db", db, "doctor")
    assert result.exit_code == 1
    assert "1 out of step" in result.stdout
    assert "1 problem found" in result.stdout
    got = json.loads(run("--db", db, "--json", "doctor").stdout)
    assert got["ok"] is False


def test_doctor_warns_of_a_hand_edited_lease_token(run, db):
    from breakpilot_store import CheckpointManager

    with CheckpointStore(db) as store:
        mgr = CheckpointManager("beta", store=store, lease=30.0, owner="holder")
        mgr.create("n", {})
        ok = json.loads(run("--db", db, "--json", "doctor").stdout)
        assert {c["check"]: c["status"] for c in ok["checks"]}["session lease tokens"] == "ok"
        _execute(db, "UPDATE sessions SET lease_token = NULL WHERE session_id = 'beta'")
        result = run("--db", db, "doctor")
        assert result.exit_code == 0, result.output  # a warning: safe, only slower
        line = next(x for x in result.stdout.splitlines() if "session lease tokens" in x)
        assert "1 out of step" in line and "warn" in line
        mgr.close()


def test_doctor_finds_a_broken_index(run, db):
    # Make the index disagree with the table behind SQLite's back.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(sql, '(session_id, name, seq)', "
        "'(session_id, seq, name)') WHERE name = 'ix_checkpoints_session_id_name_seq'"
    )
    conn.commit()
    conn.close()
    result = run("--db", db, "--json", "doctor")
    assert result.exit_code == 1, result.output
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["integrity_check"]["status"] == "PROBLEM"
    assert checks["integrity_check"]["value"] != "ok"


def test_doctor_on_a_database_without_schema(run, tmp_path):
    empty = tmp_path / "empty.db"
    _execute(empty, "CREATE TABLE unrelated (x)")
    result = run("--db", empty, "--json", "doctor")
    assert result.exit_code == 1
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["schema revision"]["status"] == "PROBLEM"
    assert raw_rows(empty, "SELECT name FROM sqlite_master") == [("unrelated",)]


def test_doctor_on_a_file_that_is_not_a_database(run, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database at all" * 200)
    result = run("--db", bogus, "doctor")
    assert result.exit_code == 1
    assert "not a SQLite database" in one_line_error(result)


def test_vacuum_shrinks_and_keeps_data(run, db):
    with CheckpointStore(db) as store:
        for i in range(300):
            store.create("bulk", "x", {"blob": "y" * 2000, "i": i})
    run("--db", db, "delete", "bulk", "-y")
    before = raw_rows(db, "SELECT * FROM checkpoints ORDER BY session_id, seq")
    pages = raw_rows(db, "PRAGMA page_count")[0][0]
    result = run("--db", db, "vacuum")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"vacuumed {db}: ")
    assert raw_rows(db, "SELECT * FROM checkpoints ORDER BY session_id, seq") == before
    assert raw_rows(db, "PRAGMA page_count")[0][0] < pages
    assert raw_rows(db, "PRAGMA freelist_count") == [(0,)]
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    got = json.loads(run("--db", db, "--json", "vacuum").stdout)
    assert got["bytes_after"] <= got["bytes_before"]
