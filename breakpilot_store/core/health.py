"""Rows the store cannot read back, for ``doctor``: values written by hand or damaged.

The store writes every checkpoint's ``data`` and ``metadata`` as a JSON object and its
``created_at`` as a UTC timestamp; a row edited in the ``sqlite3`` shell or ``psql``
may hold anything. Reading such a row raises ``CorruptDatabaseError`` naming it; these
queries find them all at once, in SQL (no row is decoded in Python).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ..checkpoint import split_id
from ..codec import decode
from ..errors import CorruptDatabaseError

#: How many of the rows found ``doctor`` names.
SHOWN = 5

# julianday() also reads a bare number (a Julian day), rolls 30 February over into
# March and takes year 0, all of which Python's datetime refuses: the shape, the date
# as date() writes it back, and the year are checked too.
_SQLITE_BAD_TIME = (
    "(typeof({col}) <> 'text' OR julianday({col}) IS NULL "
    "OR {col} NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
    "OR date(julianday(substr({col}, 1, 10))) IS NOT substr({col}, 1, 10) "
    "OR substr({col}, 1, 4) = '0000')"
)
_SQLITE_CHECKPOINTS = text(
    "SELECT session_id || ':' || seq FROM checkpoints WHERE "
    "NOT json_valid(data) OR json_type(data) <> 'object' "
    "OR NOT json_valid(metadata) OR json_type(metadata) <> 'object' OR "
    + _SQLITE_BAD_TIME.format(col="created_at")
    + " ORDER BY session_id, seq"
)
_SQLITE_SESSIONS = text(
    "SELECT session_id FROM sessions WHERE "
    + _SQLITE_BAD_TIME.format(col="created_at")
    + " OR "
    + _SQLITE_BAD_TIME.format(col="base_at")
    + " ORDER BY session_id"
)
# PostgreSQL's column types refuse text that is not JSON or not a timestamp; what a
# hand edit can still store is JSON that is not an object, and times Python's datetime
# cannot hold: +/-infinity, years BC and after 9999.
_PG_BAD_TIME = "({col} < '0001-01-01 00:00:00+00' OR {col} >= '9999-12-31 23:59:59.999999+00')"
_PG_CHECKPOINTS = text(
    "SELECT session_id || ':' || seq FROM checkpoints WHERE "
    "json_typeof(data) <> 'object' OR json_typeof(metadata) <> 'object' OR "
    + _PG_BAD_TIME.format(col="created_at")
    + " ORDER BY session_id, seq"
)
_PG_SESSIONS = text(
    "SELECT session_id FROM sessions WHERE "
    + _PG_BAD_TIME.format(col="created_at")
    + " OR "
    + _PG_BAD_TIME.format(col="base_at")
    + " ORDER BY session_id"
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
    rows = list(conn.execute(_PG_CHECKPOINTS if postgres else _SQLITE_CHECKPOINTS).scalars())
    ids = list(conn.execute(_PG_SESSIONS if postgres else _SQLITE_SESSIONS).scalars())
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
