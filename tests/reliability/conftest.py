"""Shared helpers for the reliability suite: raw operator views and child processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.operator_view import COUNTERS_SQL, derive

PYTHON = sys.executable
#: Safety bound for any one child process (never an assertion on speed).
CHILD_TIMEOUT = 60


def raw_connect(path: Path | str, *, readonly: bool = True) -> sqlite3.Connection:
    """Open the file the way an operator's ``sqlite3`` shell would (no store code)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    else:
        conn = sqlite3.connect(path, timeout=10)
    conn.isolation_level = None
    return conn


def dump(path: Path | str) -> tuple[list[tuple], list[tuple]]:
    """Return every row of ``sessions`` and ``checkpoints``, as an operator would see them."""
    conn = raw_connect(path)
    try:
        sessions = conn.execute("SELECT * FROM sessions ORDER BY session_id").fetchall()
        checkpoints = conn.execute("SELECT * FROM checkpoints ORDER BY session_id, seq").fetchall()
    finally:
        conn.close()
    return sessions, checkpoints


def counters(path: Path | str) -> dict[str, tuple[int, int]]:
    """Each session's ``(last_seq, held)``, derived from the raw tables (operator_view)."""
    conn = raw_connect(path)
    try:
        return derive(conn.execute(COUNTERS_SQL).fetchall())
    finally:
        conn.close()


def integrity(path: Path | str) -> str:
    """Return ``PRAGMA integrity_check`` of the file through a raw connection."""
    conn = raw_connect(path)
    try:
        return "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def tables(path: Path | str) -> set[str]:
    """Return the names of every table, index and view in the file."""
    conn = raw_connect(path)
    try:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()
    return {row[0] for row in rows}


def child_code(body: str) -> str:
    """Dedent a child script's body."""
    return textwrap.dedent(body)


def run_child(
    body: str, *args: str, prefix: list[str] | None = None, timeout: float = CHILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c body args...`` in a fresh interpreter and return its result."""
    return subprocess.run(
        [*(prefix or []), PYTHON, "-c", child_code(body), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def popen_child(body: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c body args...`` with its stdout piped, line buffered."""
    return subprocess.Popen(
        [PYTHON, "-c", child_code(body), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a brand-new database file."""
    return tmp_path / "store.db"
