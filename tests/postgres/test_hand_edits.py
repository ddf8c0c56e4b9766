"""PostgreSQL rows an operator edited by hand (see tests/cli/test_hand_edits.py).

``created_at = 'infinity'`` is a valid ``timestamptz`` Python cannot hold: psycopg's
``DataError`` leaked from ``get_latest`` untyped; JSON that is not an object went unseen
by ``doctor``.
"""

from __future__ import annotations

import pytest

from breakpilot_store import CheckpointStore, CorruptDatabaseError
from tests.cli.conftest import Run
from tests.pg_support import raw_postgres


def test_postgres_infinity_and_non_objects_are_typed_and_found(pg_url: str) -> None:
    with CheckpointStore(pg_url) as store:
        for i in range(3):
            store.create("a", "s", {"i": i})
    with raw_postgres(pg_url) as conn:
        conn.execute("UPDATE checkpoints SET created_at = 'infinity' WHERE seq = 3")
        conn.execute("UPDATE checkpoints SET data = '[1]' WHERE seq = 1")
        conn.execute("UPDATE checkpoints SET created_at = '10000-01-01' WHERE seq = 2")
    with CheckpointStore(pg_url) as store:
        with pytest.raises(CorruptDatabaseError, match="cannot read"):
            store.get_latest("a")
        with pytest.raises(CorruptDatabaseError, match="cannot read"):
            store.list_sessions()
    result = Run()("--db", pg_url, "doctor")
    assert result.exit_code == 1
    assert "3: a:1, a:2, a:3" in result.output
