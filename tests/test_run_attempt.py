"""``store.run(op, write=True, attempt=(statements, accept))``: PostgreSQL's one round trip.

On PostgreSQL the statements go first, as one transaction (a pipeline); ``accept`` sees
their rows and decides whether ``op`` still runs. Elsewhere ``op`` runs. Checked through
a raw connection: what is committed, what is rolled back, which errors come out.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from breakpilot_store import CheckpointStore
from breakpilot_store.errors import CheckpointValueError

_MAKE = text("CREATE TABLE IF NOT EXISTS extra (v INTEGER PRIMARY KEY)")
_ADD = text("INSERT INTO extra (v) VALUES (:v) ON CONFLICT DO NOTHING RETURNING v")


def _store(url: str) -> CheckpointStore:
    store = CheckpointStore(url)
    store.run(lambda conn: conn.execute(_MAKE), write=True)
    return store


def test_accepted_attempt_commits_and_skips_the_operation(backend_url: str, raw: Any) -> None:
    ran = []

    def operation(conn: Any) -> str:
        ran.append(1)
        conn.execute(_ADD, {"v": 1}).fetchall()  # RETURNING: read before the commit
        return "ran"

    attempt = ([(_ADD, {"v": 1}), (_ADD, {"v": 2})], lambda rows: all(rows))
    with _store(backend_url) as store:
        result = store.run(operation, write=True, attempt=attempt)
        postgres = store.engine.dialect.name == "postgresql"
    db = raw()
    if postgres:
        assert (result, ran) == (None, [])
        assert db.query("SELECT v FROM extra ORDER BY v") == [(1,), (2,)]
    else:  # no such hot path: the operation runs, the statements do not
        assert (result, ran) == ("ran", [1])
        assert db.query("SELECT v FROM extra ORDER BY v") == [(1,)]


def test_refused_attempt_runs_the_operation(backend_url: str, raw: Any) -> None:
    seen: list[list[list[Any]]] = []

    def accept(rows: list[list[Any]]) -> bool:
        seen.append(rows)
        return False

    with _store(backend_url) as store:
        store.run(lambda conn: conn.execute(_ADD, {"v": 5}).fetchall(), write=True)
        result = store.run(
            lambda conn: len(conn.execute(_ADD, {"v": 6}).fetchall()),
            write=True,
            attempt=([(_ADD, {"v": 5})], accept),  # conflicts: no row back
        )
        postgres = store.engine.dialect.name == "postgresql"
    assert result == 1
    assert seen == ([[[]]] if postgres else [])
    assert raw().query("SELECT v FROM extra ORDER BY v") == [(5,), (6,)]


def test_attempt_is_for_writes(db_path: Any) -> None:
    with CheckpointStore(db_path) as store, pytest.raises(CheckpointValueError):
        store.run(lambda conn: None, attempt=([], bool))


def test_the_async_store_takes_attempt_and_runs_the_operation(backend_url: str, raw: Any) -> None:
    import asyncio

    from breakpilot_store import AsyncCheckpointStore

    async def main() -> Any:
        async with AsyncCheckpointStore(backend_url) as store:
            await store.run(lambda conn: conn.execute(_MAKE), write=True)
            return await store.run(
                lambda conn: len(conn.execute(_ADD, {"v": 3}).fetchall()),
                write=True,
                attempt=([(_ADD, {"v": 4})], lambda rows: True),
            )

    assert asyncio.run(main()) == 1
    assert raw().query("SELECT v FROM extra ORDER BY v") == [(3,)]
