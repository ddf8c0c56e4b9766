"""Fixtures for the CLI tests: real SQLite files in tmp_path, a CliRunner, raw checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from breakpilot_store import CheckpointStore
from breakpilot_store.cli.commands import cli

#: Variables that would change what the CLI prints or where it looks.
CLEAN_ENV = {
    "BREAKPILOT_STORE_URL": None,
    "COLUMNS": None,
    "LINES": None,
    "FORCE_COLOR": None,
    "NO_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
}


class Run:
    """Invoke the CLI in-process, like a shell would, with a clean environment."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: Any, input: Any = None, env: dict[str, Any] | None = None) -> Result:
        return self.runner.invoke(
            cli,
            [str(a) for a in args],
            input=input,
            env={**CLEAN_ENV, **(env or {})},
            catch_exceptions=True,
        )


@pytest.fixture
def run() -> Run:
    return Run()


def raw_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Query a SQLite file through a separate plain connection, as an operator would."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """A store with three sessions: alpha (5), beta (2), gamma-long (1)."""
    path = tmp_path / "store.db"
    with CheckpointStore(path) as store:
        for i in range(1, 6):
            store.create("alpha", "step" if i % 2 else "tool", {"i": i, "text": "ä" * i})
        store.create("beta", "start", {"x": 1}, {"who": "test"})
        store.create("beta", "end", {"x": 2})
        store.create("gamma-long", "only", {"nested": {"deep": [1, 2, 3]}})
    yield path


def one_line_error(result: Result) -> str:
    """Assert the failure printed exactly one line, ``Error: ...``, and return it."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]
