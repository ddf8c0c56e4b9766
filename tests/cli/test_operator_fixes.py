"""What a new operator ran into: JSON everywhere, closed pipes, truncated imports, lock waits."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .conftest import one_line_error, raw_rows

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **{k: v for k, v in os.environ.items() if k != "BREAKPILOT_STORE_URL"},
    "PYTHONPATH": str(REPO),
}


def test_every_json_output_is_json(run, db, tmp_path):
    export = tmp_path / "alpha.json"
    commands = [
        ["sessions"],
        ["list", "alpha"],
        ["list", "alpha", "--name", "nothing"],
        ["show", "alpha:1"],
        ["diff", "alpha:1", "alpha:2"],
        ["export", "alpha", "-o", export],
        ["import", "copied", export],
        ["compress", "alpha", "--dry-run"],
        ["delete", "beta", "--dry-run"],
        ["prune", "--idle-for", "1s", "--dry-run"],
        ["db", "upgrade"],
        ["db", "current"],
        ["db", "check"],
        ["doctor"],
        ["vacuum"],
    ]
    for args in commands:
        result = run("--db", db, "--json", *args)
        assert result.exit_code == 0, (args, result.output)
        json.loads(result.stdout)  # the whole of stdout is one JSON document
    got = json.loads(run("--db", db, "--json", "db", "check").stdout)
    assert got["ok"] is True and got["revision"] == got["head"]
    assert json.loads(run("--db", db, "--json", "list", "alpha", "--name", "x").stdout) == []


def test_demo_into_head_exits_quietly_and_leaves_no_half_finished_session(tmp_path):
    path = tmp_path / "demo.db"
    done = subprocess.run(
        [
            "bash",
            "-c",
            'set -o pipefail; "$0" -m breakpilot_store --db "$1" demo | head -3',
            sys.executable,
            str(path),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr == ""  # no traceback, no "Error"
    assert done.returncode == 141  # 128 + SIGPIPE, as `seq 1000000 | head -3` under pipefail
    assert raw_rows(path, "SELECT count(*) FROM sessions") == [(0,)]
    assert raw_rows(path, "SELECT count(*) FROM checkpoints") == [(0,)]


def test_list_into_head(tmp_path, db):
    done = subprocess.run(
        [
            "bash",
            "-c",
            '"$0" -m breakpilot_store --db "$1" list alpha | head -1',
            sys.executable,
            db,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.stdout.split()[:2] == ["seq", "name"] and done.stderr == ""


def test_a_truncated_import_says_it_ends_early_and_where(run, db, tmp_path):
    whole = run("--db", db, "export", "alpha").stdout
    cut = tmp_path / "cut.json"
    cut.write_text(whole[: whole.index('"name"', 200) + 3], encoding="utf-8")
    result = run("--db", db, "import", "fresh", cut)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "is not valid JSON: it ends early, at line" in line and str(cut) in line
    assert "Expecting property name" not in line
    assert raw_rows(db, "SELECT count(*) FROM sessions WHERE session_id = 'fresh'") == [(0,)]


def test_a_lock_wait_shows_a_notice_on_a_terminal(db):
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "breakpilot_store", "--db", str(db), "delete", "beta", "--yes"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
        env=ENV,
    )
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 20
    while b"waiting for the database" not in seen and time.monotonic() < deadline:
        if select.select([main], [], [], 0.2)[0]:
            seen += os.read(main, 4096)
    holder.execute("ROLLBACK")
    holder.close()
    out, _ = proc.communicate(timeout=30)
    os.close(main)
    assert b"waiting for the database" in seen
    assert proc.returncode == 0
    assert b"deleted session 'beta'" in out
    assert raw_rows(db, "SELECT count(*) FROM sessions WHERE session_id = 'beta'") == [(0,)]


def test_no_notice_when_stderr_is_not_a_terminal(db):
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "breakpilot_store", "--db", str(db), "delete", "beta", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    time.sleep(2)
    holder.execute("ROLLBACK")
    holder.close()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == b""


def test_a_cut_document_names_its_end_alike_from_text_and_stream():
    import io

    from breakpilot_store import read_document
    from breakpilot_store.core.document import parse_document
    from breakpilot_store.errors import ImportFormatError

    doc = '[\n  {"id": "a:1", "name": "x", "data": {}},\n  {"id": "a:2", "na'
    messages = []
    for read in (parse_document, lambda d: read_document(io.BytesIO(d.encode()))):
        try:
            list(read(doc))
        except ImportFormatError as exc:
            messages.append(str(exc))
    assert len(messages) == 2 and messages[0] == messages[1]
    assert "ends early, at line 3 column 20 (char 63), cut off inside a string" in messages[0]
    # A typo in the middle is still a typo, named where it is.
    try:
        list(parse_document('[{"a": 1} {"b": 2}]'))
    except ImportFormatError as exc:
        assert "Expecting ',' delimiter: line 1 column 11" in str(exc)
