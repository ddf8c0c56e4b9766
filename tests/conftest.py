"""Shared fixtures: one contract, several backends.

``backend_url`` is parametrised over every backend the run has: a SQLite file always,
PostgreSQL when ``BREAKPILOT_TEST_POSTGRES_URL`` is set (CI sets it). ``raw`` is a
separate, plain driver connection to the same database, used to check what an operator
would see, independent of the store's own code.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator_view import COUNTERS_SQL, derive

PG_ENV = "BREAKPILOT_TEST_POSTGRES_URL"


def backends() -> list[str]:
    names = ["sqlite"]
    if os.environ.get(PG_ENV):
        names.append("postgres")
    return names


class RawDB:
    """A plain driver connection for checking state the way an operator would."""

    def __init__(self, kind: str, conn: Any) -> None:
        self.kind = kind
        self.conn = conn

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` with ``?`` placeholders and return all rows as tuples."""
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            rows = [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()
        if self.kind == "postgres":
            self.conn.rollback()  # never hold a snapshot between checks
        return rows

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run a writing statement (``?`` placeholders) and commit it, as an operator would."""
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
        finally:
            cur.close()
        self.conn.commit()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def counters(self) -> dict[str, tuple[int, int]]:
        """Each session's ``(last_seq, held)``, derived from the raw tables (operator_view)."""
        return derive(self.query(COUNTERS_SQL))

    def age(self, when: str, session_id: str | None = None) -> None:
        """Make sessions look idle since ``when`` (ISO text): their row and checkpoints."""
        where, params = ("", ()) if session_id is None else (" WHERE session_id = ?", (session_id,))
        stamp = "CAST(? AS TIMESTAMPTZ)" if self.kind == "postgres" else "?"
        self.execute(f"UPDATE sessions SET base_at = {stamp}{where}", (when, *params))
        self.execute(f"UPDATE checkpoints SET created_at = {stamp}{where}", (when, *params))

    def dump(self) -> list[tuple[Any, ...]]:
        """Everything stored, as text, in a stable order (to prove 'unchanged')."""
        sessions = self.query(
            "SELECT session_id, base_seq, base_count, CAST(created_at AS TEXT), "
            "CAST(base_at AS TEXT) FROM sessions ORDER BY session_id"
        )
        checkpoints = self.query(
            "SELECT session_id, seq, name, CAST(created_at AS TEXT), CAST(data AS TEXT), "
            "CAST(metadata AS TEXT), origin_id FROM checkpoints ORDER BY session_id, seq"
        )
        return [("sessions",), *sessions, ("checkpoints",), *checkpoints]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path (not yet created)."""
    return tmp_path / "agents.db"


@pytest.fixture(params=backends())
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on each backend; each test gets an empty database of its own."""
    if request.param == "sqlite":
        yield str(tmp_path / "agents.db")
        return
    from tests.pg_support import isolated_postgres_url

    with isolated_postgres_url(os.environ[PG_ENV]) as url:
        yield url


@pytest.fixture
def raw(backend_url: str) -> Iterator[RawDB]:
    """A separate raw connection to ``backend_url`` (open after the store created it)."""
    opened: list[RawDB] = []

    def factory() -> RawDB:
        if "://" not in backend_url:
            # Not bound to its thread: a test may open it in a callback (async API).
            conn = sqlite3.connect(backend_url, timeout=30, check_same_thread=False)
            db = RawDB("sqlite", conn)
        else:
            from tests.pg_support import raw_postgres

            db = RawDB("postgres", raw_postgres(backend_url))
        opened.append(db)
        return db

    yield factory  # type: ignore[misc]
    for db in opened:
        db.close()
