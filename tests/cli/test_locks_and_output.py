"""Read-only commands under a held write lock; exit codes; output fit for 80 columns."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

import breakpilot_store.cli.commands as cli_module
from breakpilot_store import CheckpointStore

from .conftest import one_line_error, raw_rows

ANSI = re.compile(r"\x1b\[")

READ_COMMANDS = [
    ["sessions"],
    ["sessions", "--idle-for", "1s"],
    ["list", "alpha"],
    ["show", "alpha:1"],
    ["export", "alpha"],
    ["doctor"],
    ["db", "current"],
    ["db", "check"],
    ["delete", "alpha", "--dry-run"],
    ["prune", "--idle-for", "1s", "--dry-run"],
]


@pytest.fixture
def write_locked(db, monkeypatch):
    """Hold SQLite's write lock (BEGIN IMMEDIATE plus a pending write) in a raw connection."""
    monkeypatch.setattr(cli_module, "BUSY_TIMEOUT", 0.2)  # a wrong writer fails fast
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE sessions SET base_seq = base_seq + 100 WHERE session_id = 'beta'")
    yield db
    conn.execute("ROLLBACK")
    conn.close()


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_work_while_another_connection_holds_the_write_lock(run, write_locked, args):
    result = run("--db", write_locked, *args)
    assert result.exit_code == 0, result.output


def test_copy_reads_a_write_locked_source(run, write_locked, tmp_path):
    result = run("copy", "--from", write_locked, "--to", tmp_path / "t.db")
    assert result.exit_code == 0, result.output
    assert raw_rows(tmp_path / "t.db", "SELECT count(*) FROM checkpoints") == [(8,)]


def test_write_commands_wait_for_the_lock_then_fail_cleanly(run, write_locked):
    # The control for the tests above: a command that writes does block on the lock.
    result = run("--db", write_locked, "delete", "alpha", "--yes")
    assert result.exit_code == 1
    assert "locked" in one_line_error(result)
    result = run("--db", write_locked, "compress", "alpha", "--compress-after", "1")
    assert result.exit_code == 1
    assert "locked" in one_line_error(result)


def test_read_commands_see_only_committed_data(run, write_locked):
    got = json.loads(run("--db", write_locked, "--json", "sessions").stdout)
    assert {s["session_id"]: s["last_seq"] for s in got}["beta"] == 2


def test_read_commands_open_the_file_read_only(run, db, monkeypatch):
    opened = []
    real = CheckpointStore.__init__

    def spy(self, url=None, **kwargs):
        opened.append(kwargs)
        real(self, url, **kwargs)

    monkeypatch.setattr(CheckpointStore, "__init__", spy)
    for args in READ_COMMANDS:
        if args[0] in ("doctor", "db"):
            continue  # these read through a read-only engine of their own (tested above)
        opened.clear()
        assert run("--db", db, *args).exit_code == 0, args
        assert opened and all(
            o.get("readonly") is True and o.get("migrate") is False for o in opened
        ), (args, opened)


def test_debug_shows_the_traceback(run, tmp_path):
    plain = run("--db", tmp_path / "none.db", "sessions")
    assert plain.exit_code == 1
    assert "Traceback" not in plain.stderr
    debug = run("--debug", "--db", tmp_path / "none.db", "sessions")
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "StoreUnavailableError" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("Error: no database at")


def test_usage_errors_exit_2(run, db):
    for args in (
        ["nonsense"],
        ["sessions", "--no-such-option"],
        ["show"],
        ["sessions", "--sort", "colour"],
        ["demo", "--steps", "4", "--kill-after", "4"],
    ):
        result = run("--db", db, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_help_and_version(run):
    result = run("--help")
    assert result.exit_code == 0
    for name in ("sessions", "list", "show", "export", "import", "copy", "doctor", "demo"):
        assert name in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("breakpilot-store, version ")


@pytest.fixture
def wide_db(tmp_path):
    """A store whose ids, names and data are far wider than a terminal."""
    path = tmp_path / "wide.db"
    with CheckpointStore(path) as store:
        for i in range(3):
            store.create(
                "a-very-long-session-identifier-" + "x" * 60 + str(i),
                "a-rather-long-checkpoint-name-that-goes-on-and-on",
                {"text": "lorem ipsum " * 40, "i": i, "colour": "\x1b[31mred\x1b[0m"},
            )
    return path


def _ids(path):
    return [r[0] for r in raw_rows(path, "SELECT session_id FROM sessions ORDER BY session_id")]


def test_output_fits_80_columns_and_has_no_escape_codes_when_piped(run, wide_db):
    session = _ids(wide_db)[0]
    for args in (
        ["sessions"],
        ["list", session],
        ["show", f"{session}:1"],
        ["doctor"],
        ["db", "current"],
    ):
        result = run("--db", wide_db, *args)
        assert result.exit_code == 0, (args, result.output)
        assert not ANSI.search(result.stdout), args
        assert not ANSI.search(result.stderr), args
        lines = result.stdout.splitlines()
        if args[0] == "show":  # the data is printed as JSON, as it is; the fields fit
            lines = lines[: lines.index("data:")]
            assert "".join(lines).startswith(f"id       {session}:1")
        for line in lines:
            assert len(line) <= 80, (args, line)


def test_long_session_ids_stay_whole_in_the_sessions_table(run, wide_db):
    out = run("--db", wide_db, "sessions").stdout
    column = "".join(line.split(" ", 1)[0] for line in out.splitlines()[2:])
    assert column == "".join(_ids(wide_db))


TERMINAL = {"FORCE_COLOR": "1", "COLUMNS": "80"}  # rich then treats the streams as a terminal


def test_on_a_terminal_show_is_syntax_coloured(run, db):
    result = run("--db", db, "show", "beta:1", env=TERMINAL)
    assert result.exit_code == 0, result.output
    assert ANSI.search(result.stdout)
    plain = ANSI.sub("", re.sub(r"\x1b\[[0-9;]*m", "", result.stdout))
    assert '"who": "test"' in plain


def test_on_a_terminal_export_and_import_draw_a_progress_bar(run, db, tmp_path):
    out = tmp_path / "a.json"
    result = run("--db", db, "export", "alpha", "-o", out, env=TERMINAL)
    assert result.exit_code == 0, result.output
    assert "export alpha" in result.stderr  # the bar's label, on stderr only
    assert out.read_text() == run("--db", db, "export", "alpha").stdout
    result = run("--db", tmp_path / "t.db", "import", "alpha", out, env=TERMINAL)
    assert result.exit_code == 0, result.output
    assert "import alpha" in result.stderr
    assert "imported 5 checkpoints" in result.stdout
    result = run("copy", "--from", db, "--to", tmp_path / "c.db", env=TERMINAL)
    assert result.exit_code == 0, result.output
    assert raw_rows(tmp_path / "c.db", "SELECT count(*) FROM checkpoints") == [(8,)]
