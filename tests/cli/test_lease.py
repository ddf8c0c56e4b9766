"""The CLI and leases: writes refused while a session is leased, --force, lease show/release."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore, LeaseLostError

from .conftest import one_line_error, raw_rows


@pytest.fixture
def held(db):
    """``alpha`` leased by an agent named ``agent-host:42`` (30 s)."""
    store = CheckpointStore(db)
    mgr = CheckpointManager("alpha", store=store, lease=30.0, owner="agent-host:42")
    yield mgr
    mgr.close()
    store.close()


def _dump(path):
    return raw_rows(path, "SELECT session_id, seq, name FROM checkpoints ORDER BY 1, 2")


def test_sessions_shows_the_holder_token_and_expiry(run, db, held):
    result = run("--db", db, "sessions", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.stderr
    assert "lease (UTC)" in result.stdout.splitlines()[0]
    alpha = next(line for line in result.stdout.splitlines() if line.startswith("alpha"))
    expires = raw_rows(db, "SELECT expires_at FROM leases")[0][0]
    assert f"agent-host:42 #1 {expires[11:19]}" in alpha
    beta = next(line for line in result.stdout.splitlines() if line.startswith("beta"))
    assert beta.rstrip().endswith("-")
    result = run("--db", db, "sessions", "--json")
    rows = {r["session_id"]: r for r in json.loads(result.stdout)}
    assert rows["alpha"]["lease"]["owner"] == "agent-host:42"
    assert rows["alpha"]["lease"]["token"] == 1 and rows["alpha"]["lease"]["live"] is True
    assert datetime.fromisoformat(rows["alpha"]["lease"]["expires_at"]).tzinfo is not None
    assert rows["beta"]["lease"] is None


def test_lease_show(run, db, held):
    result = run("--db", db, "lease", "show", "alpha")
    assert result.exit_code == 0, result.stderr
    assert "holder:    agent-host:42" in result.stdout and "token:     1" in result.stdout
    assert "state:     live" in result.stdout and "lease of 30 s" in result.stdout
    result = run("--db", db, "lease", "show", "beta")
    assert result.exit_code == 0 and "never leased" in result.stdout
    data = json.loads(run("--db", db, "lease", "show", "alpha", "--json").stdout)
    assert data["lease"]["owner"] == "agent-host:42" and data["lease"]["token"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("delete", "alpha", "--yes"),
        ("compress", "alpha", "--compress-after", "1", "--max-checkpoints", "2"),
        ("import", "alpha", "-"),
    ],
)
def test_writes_are_refused_while_leased_and_force_writes(run, db, held, args):
    before = _dump(db)
    doc = '[{"id": "z:1", "name": "imp", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}]'
    result = run("--db", db, *args, input=doc)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "leased by 'agent-host:42' (token 1)" in line and "--force" in line
    assert _dump(db) == before
    result = run("--db", db, *args, "--force", input=doc)
    assert result.exit_code == 0, result.stderr
    assert _dump(db) != before


def test_a_dry_run_compress_is_not_a_write(run, db, held):
    before = _dump(db)
    result = run(
        "--db",
        db,
        "compress",
        "alpha",
        "--compress-after",
        "1",
        "--max-checkpoints",
        "2",
        "--dry-run",
    )
    assert result.exit_code == 0, result.stderr
    assert "would remove 3 checkpoints" in result.stdout
    assert _dump(db) == before


def test_prune_keeps_a_leased_session_unless_forced(run, db, held):
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET base_at = '2020-01-01T00:00:00.000000+00:00'")
    conn.execute("UPDATE checkpoints SET created_at = '2020-01-01T00:00:00.000000+00:00'")
    conn.commit()
    conn.close()
    result = run("--db", db, "prune", "--idle-for", "1d", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [r[0] for r in raw_rows(db, "SELECT session_id FROM sessions")] == ["alpha"]
    result = run("--db", db, "prune", "--idle-for", "1d", "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    assert raw_rows(db, "SELECT session_id FROM sessions") == []


def test_lease_release_needs_yes_and_fences_the_holder(run, db, held):
    result = run("--db", db, "lease", "release", "alpha")
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert raw_rows(db, "SELECT owner, token FROM leases") == [("agent-host:42", 1)]
    result = run("--db", db, "lease", "release", "alpha", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "released the lease of 'agent-host:42' (token 1)" in result.stdout
    assert raw_rows(db, "SELECT owner, token, expires_at FROM leases") == [(None, 1, None)]
    assert raw_rows(
        db,
        "SELECT lease_owner, lease_token, leased FROM session_overview WHERE session_id = 'alpha'",
    ) == [(None, 1, 0)]
    with pytest.raises(LeaseLostError):
        held.create("zombie", {})
    result = run("--db", db, "delete", "alpha", "--yes")  # no lease now: no --force needed
    assert result.exit_code == 0, result.stderr
    result = run("--db", db, "lease", "release", "beta", "--yes")
    assert result.exit_code == 1 and "no lease" in one_line_error(result)
    result = run("--db", db, "lease", "release", "alpha", "--yes")
    assert result.exit_code == 0 and "was not leased" in result.stdout
