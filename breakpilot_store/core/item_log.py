"""A session as an append-only log of JSON items: the framework integrations' core.

An OpenAI Agents SDK item or a Google ADK event is one ``checkpoints`` row of a store
session (``name`` says what it is, ``data`` is the item as JSON text), so the CLI, the
views, export/import and ``json_extract`` work on them unchanged. Appends allocate seqs
through the session's counter (:mod:`breakpilot_store.core.counters`), so they are
gapless, ordered and never reused, even after :func:`pop_newest`.

As everywhere in ``core``, every function runs inside the caller's transaction (or
savepoint, under group commit) and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from ..checkpoint import Checkpoint
from ..codec import decode
from ..schema import UTCDateTime, checkpoints
from . import counters
from . import repository as repo

_c = checkpoints.c

# Built once with bound parameters, so each compiles once per engine (a statement
# built per call cost more than the query itself: profiled, ~60% of a read).
_INSERT = insert(checkpoints)
_SID = _c.session_id == bindparam("sid")
_FROM = _c.created_at >= bindparam("start", type_=UTCDateTime())
_ALL = select(_c.data).where(_SID).order_by(_c.seq)
_ALL_FROM = select(_c.data).where(_SID, _FROM).order_by(_c.seq)
_NEWEST = select(_c.data).where(_SID).order_by(_c.seq.desc()).limit(bindparam("n"))
_NEWEST_FROM = select(_c.data).where(_SID, _FROM).order_by(_c.seq.desc()).limit(bindparam("n"))

#: One item to append: ``(name, created_at, data)`` with ``data`` encoded JSON text.
LogItem = tuple[str, datetime, str]


def append(conn: Connection, session_id: str, items: Sequence[LogItem], now: datetime) -> int:
    """Append ``items`` to the session's log (creating the session) in the given order.

    Args:
        conn: A connection in a write transaction.
        session_id: The store session.
        items: What to append; ``data`` is already-encoded JSON text (the codec's).
        now: The time to record if the session is new.

    Returns:
        The seq of the first item appended (the others follow it, one apart).
    """
    row_lock = conn.dialect.name == "postgresql"
    first, _held = counters.next_seq(conn, session_id, now, row_lock=row_lock)
    # Everything above the base is a create since it, so a run of consecutive seqs
    # keeps the counter's invariant. Core's executemany, not the bulk paths' bare driver
    # calls: under the async store an op may run on an async driver (PostgreSQL).
    conn.execute(
        _INSERT,
        [
            {
                "session_id": session_id,
                "seq": first + i,
                "name": name,
                "created_at": created_at,
                "data": data,
                "metadata": "{}",
                "origin_id": None,
            }
            for i, (name, created_at, data) in enumerate(items)
        ],
    )
    return first


def read(
    conn: Connection,
    session_id: str,
    *,
    limit: int | None = None,
    start: datetime | None = None,
) -> list[Any]:
    """Return the session's items (decoded ``data``) in log order: all, or the newest ``limit``.

    Args:
        conn: A connection.
        session_id: The store session (an unknown one has no items).
        limit: ``None`` for all; ``n > 0`` for the newest ``n``; ``0`` for none.
        start: Only items created at or after this time.
    """
    params: dict[str, Any] = {"sid": session_id, "start": start}
    if limit is not None and limit > 2**62:
        limit = None  # more than a session can hold is all (2**70 overflowed the bind)
    if limit is None:
        rows = conn.execute(_ALL if start is None else _ALL_FROM, params).scalars().all()
        return [decode(data) for data in rows]
    if limit <= 0:
        return []
    params["n"] = limit
    rows = conn.execute(_NEWEST if start is None else _NEWEST_FROM, params).scalars().all()
    return [decode(data) for data in reversed(rows)]


def pop_newest(conn: Connection, session_id: str, now: datetime) -> Checkpoint | None:
    """Delete the session's newest item and return it (``None`` if it has none).

    The counter keeps the popped seq: the next append gets a new one.
    """
    if not counters.lock(conn, session_id):
        return None
    newest = repo.fetch_latest(conn, session_id)
    if newest is None:
        return None
    # Fold first: the counter must remember the seq of the row about to go.
    counters.fold(conn, session_id, now)
    seq = int(newest.id.rsplit(":", 1)[1])
    conn.execute(delete(checkpoints).where(_c.session_id == session_id, _c.seq == seq))
    counters.adjust(conn, session_id, -1)
    return newest
