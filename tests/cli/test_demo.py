"""demo: a real child process is SIGKILLed mid-step and a new one resumes from get_latest()."""

from __future__ import annotations

import json
import shlex
import sqlite3

import pytest

from breakpilot_store.cli.demo import DemoError, run_agent, sqlite3_command

from .conftest import one_line_error, raw_rows


def _names(path, session):
    rows = raw_rows(
        path,
        "SELECT name, data ->> 'step', metadata ->> 'pid' FROM checkpoints "
        "WHERE session_id = ? ORDER BY seq",
        (session,),
    )
    return rows


def test_demo_kills_resumes_and_finishes(run, tmp_path):
    path = tmp_path / "demo.db"
    result = run("--db", path, "demo", "--steps", "6", "--kill-after", "3", "--step-delay", "0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "SIGKILL" in out and "exit status -9" in out
    assert "get_latest() -> demo-1:4 step_done (step 3/6): resuming at step 4" in out

    rows = _names(path, "demo-1")
    names = [r[0] for r in rows]
    assert names == [
        "task_started",
        *["step_done"] * 3,
        "resumed",
        *["step_done"] * 3,
        "task_finished",
    ]
    steps = [r[1] for r in rows if r[0] == "step_done"]
    assert steps == [1, 2, 3, 4, 5, 6]  # every step exactly once: nothing lost, nothing redone
    first_pid, second_pid = rows[0][2], rows[-1][2]
    assert first_pid != second_pid
    assert {r[2] for r in rows[:4]} == {first_pid}
    assert {r[2] for r in rows[4:]} == {second_pid}
    assert raw_rows(path, "SELECT seq FROM checkpoints ORDER BY seq") == [
        (i,) for i in range(1, 10)
    ]
    # The first agent really died by SIGKILL: no process, and its stall never "finished".
    assert f"pid {first_pid}" in out

    # The session as the CLI sees it, newest first, then the exact sqlite3 command.
    assert "list demo-1" in out
    table = out[out.index("list demo-1") :]
    assert table.index(" task_finished ") < table.index(" task_started ")
    command = out.strip().splitlines()[-1].strip()
    assert command == sqlite3_command(str(path), "demo-1")
    argv = shlex.split(command)
    assert argv[:4] == ["sqlite3", "-readonly", "-header", "-column"]
    assert argv[4] == str(path)
    conn = sqlite3.connect(f"file:{argv[4]}?mode=ro", uri=True)
    got = conn.execute(argv[5]).fetchall()
    conn.close()
    assert [g[1] for g in got] == names
    assert [g[3] for g in got] == [0, 1, 2, 3, 3, 4, 5, 6, 6]


def test_demo_defaults_to_a_local_file_and_numbers_sessions(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The production store in the environment is never touched by the demo.
    env = {"BREAKPILOT_STORE_URL": str(tmp_path / "production.db")}
    first = run("demo", "--steps", "2", "--kill-after", "1", "--step-delay", "0", env=env)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "breakpilot-demo.db").exists()
    assert not (tmp_path / "production.db").exists()
    assert "sqlite3 -readonly -header -column breakpilot-demo.db " in first.stdout
    second = run(
        "--json", "demo", "--steps", "2", "--kill-after", "1", "--step-delay", "0", env=env
    )
    assert second.exit_code == 0, second.output
    got = json.loads(second.stdout)
    assert got["session_id"] == "demo-2"
    assert got["killed_pid"] != got["resumed_pid"]
    assert [c["name"] for c in got["checkpoints"]][0] == "task_finished"
    assert "SIGKILL" in second.stderr  # the story goes to stderr with --json
    sessions = raw_rows(tmp_path / "breakpilot-demo.db", "SELECT session_id FROM sessions")
    assert sessions == [("demo-1",), ("demo-2",)]


def test_demo_needs_sqlite(run):
    result = run("--db", "postgresql+psycopg://u@localhost/x", "demo", "--step-delay", "0")
    assert result.exit_code == 1
    assert "needs a SQLite file" in one_line_error(result)


def test_demo_on_an_unusable_path_is_a_one_line_error(run, tmp_path):
    blocker = tmp_path / "dir"
    blocker.mkdir()
    result = run("--db", blocker, "demo", "--step-delay", "0")
    assert result.exit_code == 1
    one_line_error(result)


def test_sqlite3_command_quotes_paths():
    command = sqlite3_command("my dir/demo.db", "demo-1")
    assert shlex.split(command)[4] == "my dir/demo.db"
    assert "$" not in command


def test_a_failing_agent_process_is_reported_with_its_stderr(tmp_path):
    said = []
    missing = tmp_path / "no" / "such" / "dir" / "demo.db"
    with pytest.raises(DemoError) as caught:
        run_agent(missing, "demo-1", 3, 0.0, said.append, kill_at=2)
    message = str(caught.value)
    assert "exited with status 1" in message
    assert "cannot be opened" in message or "unable to open" in message
    assert said == []
