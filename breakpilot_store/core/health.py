"""Rows the store cannot read back, for ``doctor``: values written by hand or damaged.

The store writes every checkpoint's ``data`` and ``metadata`` as a JSON object and its
``created_at`` as a UTC timestamp; a row edited in the ``sqlite3`` shell or ``psql``
may hold anything. Reading such a row raises ``CorruptDatabaseError`` naming it; these
queries find them all at once, in SQL (no row is decoded in Python).
"""

from __future__ import annotations

from sqlalchemy import Connection, TextClause, text

from ..checkpoint import split_id
from ..codec import decode
from ..errors import CorruptDatabaseError

#: How many of the rows found ``doctor`` names.
SHOWN = 5


def _queries(not_object: str, bad_time: str) -> tuple[TextClause, TextClause]:
    """The checkpoints and the sessions holding what the store cannot read."""
    times = [bad_time.format(col=col) for col in ("created_at", "base_at")]
    checkpoints = text(
        "SELECT session_id || ':' || seq FROM checkpoints WHERE "
        + " OR ".join([not_object.format(col="data"), not_object.format(col="metadata")])
        + f" OR {times[0]} ORDER BY session_id, seq"
    )
    sessions = text(f"SELECT session_id FROM sessions WHERE {' OR '.join(times)} ORDER BY 1")
    return checkpoints, sessions


# julianday() also reads a bare number (a Julian day), rolls 30 February over into
# March and takes year 0, all of which Python's datetime refuses: the shape, the date
# as date() writes it back, and the year are checked too.
_SQLITE = _queries(
    # (CASE: json_type() of text that is not JSON is an error, not NULL.)
    "CASE WHEN json_valid({col}) THEN json_type({col}) <> 'object' ELSE 1 END",
    "(typeof({col}) <> 'text' OR julianday({col}) IS NULL "
    "OR {col} NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
    "OR date(julianday(substr({col}, 1, 10))) IS NOT substr({col}, 1, 10) "
    "OR substr({col}, 1, 4) = '0000')",
)
# PostgreSQL's column types refuse text that is not JSON or not a timestamp; what a
# hand edit can still store is JSON that is not an object, and times Python's datetime
# cannot hold: +/-infinity, years BC and after 9999.
_PG = _queries(
    "json_typeof({col}) <> 'object'",
    "({col} < '0001-01-01 00:00:00+00' OR {col} > '9999-12-31 23:59:59.999999+00')",
)


# SQLite's json_valid() reads a BLOB as text without checking its UTF-8: the few BLOBs
# (only a hand edit stores one) are decoded here as the store would.
_SQLITE_BLOBS = text(
    "SELECT session_id || ':' || seq, data, metadata FROM checkpoints "
    "WHERE typeof(data) = 'blob' OR typeof(metadata) = 'blob'"
)


def unreadable(conn: Connection) -> tuple[list[str], list[str]]:
    """The checkpoints (ids) and sessions (ids) holding values the store cannot read."""
    postgres = conn.dialect.name == "postgresql"
    checkpoints, sessions = _PG if postgres else _SQLITE
    rows = list(conn.execute(checkpoints).scalars())
    ids = list(conn.execute(sessions).scalars())
    if not postgres:
        found = set(rows)
        for checkpoint_id, *values in conn.execute(_SQLITE_BLOBS):
            if checkpoint_id not in found and not all(map(_readable, values)):
                rows.append(checkpoint_id)
        rows.sort(key=split_id)  # (the ids are the store's: split_id never says None)
    return rows, ids


def _readable(value: object) -> bool:
    try:
        decoded = decode(value)  # type: ignore[arg-type]
    except CorruptDatabaseError:
        return False
    return isinstance(decoded, dict)


def describe(found: list[str]) -> str:
    """``n`` and the first few of them, for a line of ``doctor``'s report."""
    if not found:
        return "0"
    shown = ", ".join(found[:SHOWN]) + (", ..." if len(found) > SHOWN else "")
    return f"{len(found)}: {shown}"
