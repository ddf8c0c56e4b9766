"""Rows an operator edited by hand: typed errors that name the row, and ``doctor`` finds them.

Found by a hostile campaign (round 6): one checkpoint whose ``created_at`` was set to
``'garbage'`` in the ``sqlite3`` shell (or ``'infinity'`` in ``psql``), or whose ``data``
was not JSON, made ``get_latest``, iteration, ``export``, ``show`` and ``sessions`` fail
with an untyped ``ValueError``/``JSONDecodeError``/``UnicodeDecodeError``/psycopg
``DataError`` (the CLI: "unexpected ...; please report it"), while ``doctor`` said "no
problems found". A counter edited to text or to 2^63-1 gave a builtin ``TypeError`` or
``OverflowError`` from ``create``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from breakpilot_store import (
    AsyncCheckpointStore,
    CheckpointManager,
    CheckpointStore,
    CorruptDatabaseError,
    DatabaseError,
)
from tests.cli.conftest import one_line_error


def _edit(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(path)  # the sqlite3 shell's defaults: foreign keys off
    with conn:
        conn.execute(sql, params)
    conn.close()


@pytest.mark.parametrize(
    "stamp",
    [
        "garbage",
        "",
        12345,
        "2026-13-45T00:00:00",
        # SQLite's julianday() reads these; Python's datetime does not (a review).
        "2024-02-30T00:00:00+00:00",
        "0000-01-01T00:00:00+00:00",
    ],
)
def test_a_hand_written_timestamp_is_a_typed_error_naming_the_row(db, run, stamp) -> None:  # noqa: ANN001
    edit = "UPDATE checkpoints SET created_at = ? WHERE session_id = 'alpha' AND seq = 5"
    _edit(db, edit, (stamp,))
    with CheckpointStore(db) as store:
        with pytest.raises(CorruptDatabaseError, match="checkpoint 'alpha:5'.*not a timestamp"):
            store.get_latest("alpha")
        with pytest.raises(CorruptDatabaseError, match="alpha:5"):
            store.export_json("alpha")
        assert store.get_latest("beta").name == "end"  # the other sessions read on
    for args in (["show", "alpha:5"], ["export", "alpha"], ["sessions"]):
        result = run("--db", db, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "not a timestamp" in one_line_error(result)
        assert "please report" not in result.stderr
    result = run("--db", db, "doctor")
    assert result.exit_code == 1
    assert "unreadable checkpoints" in result.output and "1: alpha:5" in result.output


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("data", "{bad json", "not readable JSON"),
        ("data", b'{"\xff": 1}', "utf-8"),
        ("metadata", "[1, 2", "not readable JSON"),
    ],
)
def test_stored_text_that_is_not_json_is_a_typed_error_naming_the_row(
    db,
    run,
    column,
    value,
    fragment,  # noqa: ANN001
) -> None:
    edit = f"UPDATE checkpoints SET {column} = ? WHERE session_id = 'beta' AND seq = 1"
    _edit(db, edit, (value,))
    mgr = CheckpointManager("beta", store=db)
    with pytest.raises(CorruptDatabaseError, match=f"beta:1.*{fragment}"):
        [cp.to_dict() for cp in mgr]  # the lazy fields decode here
    with pytest.raises(CorruptDatabaseError, match="'beta:1'"):
        mgr.export()
    assert mgr.get_latest().data == {"x": 2}
    mgr.close()
    for args in (["show", "beta:1"], ["export", "beta"]):
        result = run("--db", db, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "beta:1" in one_line_error(result)
    result = run("--db", db, "doctor")
    assert result.exit_code == 1 and "1: beta:1" in result.output


def test_json_that_is_not_an_object_is_found_by_doctor(db, run) -> None:  # noqa: ANN001
    _edit(db, "UPDATE checkpoints SET data = '[1, 2]' WHERE session_id = 'alpha' AND seq = 2")
    _edit(db, "UPDATE sessions SET base_at = 'soon' WHERE session_id = 'gamma-long'")
    result = run("--db", db, "doctor")
    assert result.exit_code == 1
    assert "1: alpha:2" in result.output and "1: gamma-long" in result.output
    assert "2 problems found" in result.output


def test_a_timestamp_without_an_offset_reads_as_utc(db) -> None:  # noqa: ANN001
    _edit(db, "UPDATE checkpoints SET created_at = datetime('now') WHERE session_id = 'beta'")
    with CheckpointStore(db) as store:
        stamps = [cp.timestamp for cp in store.list_checkpoints("beta")]
        exported = store.export_json("beta")
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in stamps)
    assert exported.count("+00:00") == 2


def test_a_timestamp_with_another_offset_reads_as_the_same_moment_in_utc(db, run) -> None:  # noqa: ANN001
    edit = "UPDATE checkpoints SET created_at = ? WHERE session_id = 'beta' AND seq = 1"
    _edit(db, edit, ("2026-01-01T02:00:00.250000+02:00",))
    with CheckpointStore(db) as store:
        stamp = store.get("beta:1").timestamp
        exported = store.export_json("beta")
    assert stamp.isoformat() == "2026-01-01T00:00:00.250000+00:00"
    assert '"2026-01-01T00:00:00.250000+00:00"' in exported
    assert run("--db", db, "doctor").exit_code == 0  # readable: not a problem


def test_a_clean_store_passes_the_new_checks(db, run) -> None:  # noqa: ANN001
    result = run("--db", db, "doctor")
    assert result.exit_code == 0, result.output
    assert "unreadable checkpoints" in result.output and "no problems found" in result.output


@pytest.mark.parametrize(
    ("base_seq", "error", "fragment"),
    [("abc", CorruptDatabaseError, "not an integer"), (2**63 - 1, DatabaseError, "every seq")],
)
def test_a_hand_edited_counter_is_a_typed_error_for_its_session_only(
    db,
    base_seq,
    error,
    fragment,  # noqa: ANN001
) -> None:
    _edit(db, "UPDATE sessions SET base_seq = ? WHERE session_id = 'alpha'", (base_seq,))
    with CheckpointStore(db) as store, pytest.raises(error, match=fragment):
        store.create("alpha", "x", {})

    async def group() -> list[Any]:
        async with AsyncCheckpointStore(db) as store:
            return await asyncio.gather(
                *(store.create(sid, "x", {}) for sid in ["alpha", "beta"] * 10),
                return_exceptions=True,
            )

    outcomes = asyncio.run(group())
    assert all(isinstance(o, error) for o in outcomes[0::2]), outcomes[0::2]
    assert [o.seq for o in outcomes[1::2]] == list(range(3, 13))  # beta's commit
