"""sessions, list, show: tables, JSON, filters, sorting and their error paths."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from breakpilot_store import CheckpointStore

from .conftest import one_line_error, raw_rows


def test_sessions_table_lists_every_session(run, db):
    result = run("--db", db, "sessions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "session",
        "held",
        "seq",
        "first",
        "(UTC)",
        "last",
        "(UTC)",
        "last",
        "name",
    ]
    body = [line.split() for line in lines[2:]]
    assert [row[0] for row in body] == ["alpha", "beta", "gamma-long"]
    assert body[0][1:3] == ["5", "5"]
    assert body[1][-1] == "end"


def test_sessions_json_matches_the_database(run, db):
    result = run("--db", db, "--json", "sessions")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert [s["session_id"] for s in got] == ["alpha", "beta", "gamma-long"]
    raw = dict(raw_rows(db, "SELECT session_id, checkpoints FROM session_overview"))
    assert {s["session_id"]: s["checkpoints"] for s in got} == raw
    assert got[0]["last_name"] == "step"
    datetime.fromisoformat(got[0]["updated_at"])


def test_json_flag_also_works_after_the_command_name(run, db):
    result = run("sessions", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3


def test_sessions_sort_and_reverse(run, db):
    result = run("--db", db, "--json", "sessions", "--sort", "checkpoints", "--reverse")
    assert [s["session_id"] for s in json.loads(result.stdout)] == ["alpha", "beta", "gamma-long"]
    result = run("--db", db, "--json", "sessions", "--sort", "checkpoints")
    assert [s["session_id"] for s in json.loads(result.stdout)] == ["gamma-long", "beta", "alpha"]
    result = run("--db", db, "--json", "sessions", "--sort", "last", "-r", "--limit", "1")
    assert [s["session_id"] for s in json.loads(result.stdout)] == ["gamma-long"]


def test_sessions_filter_by_prefix_and_idle_time(run, db):
    result = run("--db", db, "--json", "sessions", "--prefix", "gam")
    assert [s["session_id"] for s in json.loads(result.stdout)] == ["gamma-long"]
    result = run("--db", db, "--json", "sessions", "--idle-for", "1h")
    assert json.loads(result.stdout) == []
    old = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat(timespec="microseconds")
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET base_at = ? WHERE session_id = 'beta'", (old,))
    conn.execute("UPDATE checkpoints SET created_at = ? WHERE session_id = 'beta'", (old,))
    conn.commit()
    conn.close()
    result = run("--db", db, "--json", "sessions", "--idle-for", "30d")
    assert [s["session_id"] for s in json.loads(result.stdout)] == ["beta"]


def test_sessions_bad_duration_is_a_usage_error(run, db):
    result = run("--db", db, "sessions", "--idle-for", "30 days")
    assert result.exit_code == 2
    assert "not a duration" in result.stderr
    assert "30d" in result.stderr


def test_sessions_empty_store_says_so(run, tmp_path):
    CheckpointStore(tmp_path / "e.db").close()
    result = run("--db", tmp_path / "e.db", "sessions")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no sessions" in result.stderr


def test_missing_database_is_a_one_line_error_and_is_not_created(run, tmp_path):
    result = run("--db", tmp_path / "nope.db", "sessions")
    assert result.exit_code == 1
    assert "no database at" in one_line_error(result)
    assert not (tmp_path / "nope.db").exists()


def test_db_from_environment_variable(run, db):
    result = run("--json", "sessions", env={"BREAKPILOT_STORE_URL": str(db)})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3
    result = run("--json", "sessions", env={"BREAKPILOT_STORE_URL": f"sqlite:///{db}"})
    assert len(json.loads(result.stdout)) == 3


def test_global_db_overrides_environment(run, db, tmp_path):
    result = run(
        "--db", db, "--json", "sessions", env={"BREAKPILOT_STORE_URL": str(tmp_path / "x")}
    )
    assert result.exit_code == 0, result.output


def test_list_is_newest_first_and_export_shaped_in_json(run, db):
    result = run("--db", db, "--json", "list", "alpha")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert [c["id"] for c in got] == [f"alpha:{i}" for i in range(5, 0, -1)]
    assert got[0]["data"] == {"i": 5, "text": "äääää"}
    assert set(got[0]) == {"id", "name", "timestamp", "data", "metadata"}


def test_list_table(run, db):
    result = run("--db", db, "list", "alpha")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["seq", "name"]
    assert [line.split()[0] for line in lines[2:]] == ["5", "4", "3", "2", "1"]
    assert '{"i":5,"text":"äääää"}' in lines[2]


def test_list_name_since_and_limit(run, db):
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--name", "tool").stdout)
    assert [c["id"] for c in got] == ["alpha:4", "alpha:2"]
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--limit", "2").stdout)
    assert [c["id"] for c in got] == ["alpha:5", "alpha:4"]
    result = run("--db", db, "list", "alpha", "--limit", "2")
    assert "newest 2 shown of 5; --limit 0 for all" in result.stderr
    # With a filter, the footer counts what matched, not the whole session.
    result = run("--db", db, "list", "alpha", "--name", "step", "--limit", "2")
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["5", "3"]
    assert "newest 2 shown of the 3 that match (the session holds 5)" in result.stderr
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--since", "1h").stdout)
    assert len(got) == 5
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--since", future).stdout)
    assert got == []
    cutoff = json.loads(run("--db", db, "--json", "list", "alpha").stdout)[2]["timestamp"]
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--since", cutoff).stdout)
    assert [c["id"] for c in got] == ["alpha:5", "alpha:4"]
    naive = datetime.fromisoformat(cutoff).replace(tzinfo=None).isoformat()
    got = json.loads(run("--db", db, "--json", "list", "alpha", "--since", naive).stdout)
    assert [c["id"] for c in got] == ["alpha:5", "alpha:4"]  # a naive time is UTC


def test_list_no_match_says_so(run, db):
    result = run("--db", db, "list", "alpha", "--name", "nothing")
    assert result.exit_code == 0
    assert "no checkpoints match" in result.stderr


def test_list_errors(run, db):
    result = run("--db", db, "list", "nobody")
    assert result.exit_code == 1
    assert "no session 'nobody'" in one_line_error(result)
    result = run("--db", db, "list", "alpha", "--since", "yesterday")
    assert result.exit_code == 2
    assert "neither a duration" in result.stderr
    result = run("--db", db, "list", "alpha", "--limit", "-1")
    assert result.exit_code == 2
    result = run("--db", db, "list")
    assert result.exit_code == 2


def test_show_prints_fields_data_and_metadata(run, db):
    result = run("--db", db, "show", "beta:1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "id       beta:1" in out
    assert "name     start" in out
    assert '"x": 1' in out
    assert '"who": "test"' in out


def test_show_json_is_the_checkpoint_dict(run, db):
    result = run("--db", db, "--json", "show", "gamma-long:1")
    got = json.loads(result.stdout)
    with CheckpointStore(db, readonly=True, migrate=False) as store:
        assert got == store.get("gamma-long:1").to_dict()


def test_show_unknown_or_malformed_id(run, db):
    for bad in ("beta:9", "beta", "beta:007", ":1"):
        result = run("--db", db, "show", bad)
        assert result.exit_code == 1, bad
        assert "no checkpoint" in one_line_error(result)
