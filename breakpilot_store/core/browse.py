"""Read queries for people looking at a live store: the web view, ``watch``, ``list``.

Like the rest of ``core``, every function takes a ``Connection`` in the caller's (read)
transaction and never begins or commits. They read only the columns a page shows: a
table row carries a checkpoint's size and the start of its data, never a 1 MB value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, LargeBinary, String, Text, cast, func, select, text, type_coerce

from ..schema import checkpoints, to_text
from .bounds import NOTHING

_c = checkpoints.c

#: The columns ``session_overview`` has had since revision 0002; any other column a
#: later revision adds (leases, for one) is shown by the web view as it comes.
BASE_SESSION_COLUMNS = (
    "session_id",
    "checkpoints",
    "last_seq",
    "first_checkpoint_at",
    "last_checkpoint_at",
    "last_name",
    "created_at",
    "updated_at",
)

#: Characters of a checkpoint's data shown in a table row.
PREVIEW_CHARS = 120


def _as_time(value: Any) -> Any:
    """A view's timestamp: text on SQLite (stored fixed-width ISO-8601), typed elsewhere."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def session_columns(conn: Connection) -> list[str]:
    """Return the columns of the ``session_overview`` view, in its order."""
    return list(conn.execute(text("SELECT * FROM session_overview WHERE 1 = 0")).keys())


@dataclass(frozen=True)
class SessionPage:
    """A page of the ``session_overview`` view.

    Attributes:
        columns: Every column of the view (the base ones first, then any later revision's).
        rows: One dict per session, timestamps as aware datetimes.
        total: How many sessions match the filters (all pages).
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    total: int


def session_page(
    conn: Connection,
    *,
    prefix: Any = None,
    idle_before: Any = None,
    sort: str = "session_id",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> SessionPage:
    """Return a page of sessions from ``session_overview``, filtered and sorted.

    Args:
        conn: A connection in a read transaction.
        prefix: Only ids that start with this (matched literally, case-sensitively);
            :data:`~.bounds.NOTHING` (from ``bounds.check_prefix``) for none.
        idle_before: Only sessions whose last write is older than this aware datetime;
            :data:`~.bounds.NOTHING` (from ``bounds.idle_cutoff``) for none.
        sort: A column of the view (anything else sorts by ``session_id``).
        descending: Reverse the order.
        limit: At most this many rows.
        offset: Skip this many rows first.
    """
    columns = session_columns(conn)
    quote = conn.dialect.identifier_preparer.quote
    sort = sort if sort in columns else "session_id"
    where: list[str] = []
    params: dict[str, Any] = {}
    if prefix is NOTHING or idle_before is NOTHING:
        where.append("1 = 0")  # no session can match (see core.bounds)
    elif prefix:
        # LIKE narrows by index; the substr comparison makes it exact (SQLite's LIKE
        # ignores ASCII case), as in repository.list_sessions.
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("session_id LIKE :like ESCAPE '\\' AND substr(session_id, 1, :n) = :prefix")
        params.update(like=escaped + "%", n=len(prefix), prefix=prefix)
    if idle_before is not None and idle_before is not NOTHING:
        where.append("updated_at < :idle_before")
        sqlite = conn.dialect.name == "sqlite"
        params["idle_before"] = to_text(idle_before) if sqlite else idle_before
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    direction = "DESC" if descending else "ASC"
    # NULLs (a session with no checkpoint) go last either way, as on both backends alike.
    order = f"{quote(sort)} IS NULL, {quote(sort)} {direction}, session_id {direction}"
    rows = conn.execute(
        text(
            f"SELECT * FROM session_overview{clause} ORDER BY {order} LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    ).mappings()
    found = [{key: _as_time(value) for key, value in row.items()} for row in rows]
    total = conn.execute(text(f"SELECT count(*) FROM session_overview{clause}"), params).scalar()
    return SessionPage(columns, found, int(total or 0))


@dataclass(frozen=True)
class Entry:
    """A checkpoint as a table row shows it: no full data.

    Attributes:
        seq: Its seq.
        name: Its name.
        created_at: When it was created (aware UTC).
        size: Characters of stored data plus metadata (the view's ``payload_size``).
        preview: The first :data:`PREVIEW_CHARS` characters of its data, as stored.
    """

    seq: int
    name: str
    created_at: datetime
    size: int
    preview: str


def _as_text(column: Any) -> Any:
    # PostgreSQL's json has no length() or substr(); its text does (as SQLite's).
    return cast(column, Text)


def _size_column() -> Any:
    return (func.length(_as_text(_c.data)) + func.length(_as_text(_c.metadata))).label("size")


def entries(
    conn: Connection,
    session_id: str,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
    newest_first: bool = True,
) -> list[Entry]:
    """Return table rows of a session's checkpoints, a page at a time by seq.

    Args:
        conn: A connection in a read transaction.
        session_id: The session.
        before_seq: Only seqs below this (the next page, newest first).
        after_seq: Only seqs above this (what is new since a page was drawn).
        limit: At most this many.
        newest_first: Highest seq first.
    """
    stmt = select(
        _c.seq,
        _c.name,
        _c.created_at,
        _size_column(),
        func.substr(_as_text(_c.data), 1, PREVIEW_CHARS),
    ).where(_c.session_id == session_id)
    if before_seq is not None:
        stmt = stmt.where(_c.seq < before_seq)
    if after_seq is not None:
        stmt = stmt.where(_c.seq > after_seq)
    stmt = stmt.order_by(_c.seq.desc() if newest_first else _c.seq).limit(limit)
    return [Entry(int(r[0]), r[1], r[2], int(r[3] or 0), r[4] or "") for r in conn.execute(stmt)]


def select_one(session_id: str, seq: int) -> Any:
    """Build the SELECT of one checkpoint's header: name, time, size and origin, no data."""
    return select(_c.name, _c.created_at, _size_column(), _c.origin_id).where(
        _c.session_id == session_id, _c.seq == seq
    )


def neighbours(conn: Connection, session_id: str, seq: int) -> tuple[int | None, int | None]:
    """Return the seqs held just below and just above ``seq`` (``None`` at either end)."""
    below = conn.execute(
        select(func.max(_c.seq)).where(_c.session_id == session_id, _c.seq < seq)
    ).scalar()
    above = conn.execute(
        select(func.min(_c.seq)).where(_c.session_id == session_id, _c.seq > seq)
    ).scalar()
    return below, above


def timeline(conn: Connection, session_id: str, limit: int) -> list[tuple[int, str, datetime]]:
    """Return ``(seq, name, created_at)`` of the newest ``limit`` checkpoints, in seq order."""
    stmt = (
        select(_c.seq, _c.name, _c.created_at)
        .where(_c.session_id == session_id)
        .order_by(_c.seq.desc())
        .limit(limit)
    )
    return [(int(r[0]), r[1], r[2]) for r in reversed(conn.execute(stmt).fetchall())]


def gaps(
    conn: Connection, session_id: str, last_seq: int, limit: int = 1000
) -> list[tuple[int, int]]:
    """Return the seq ranges the session no longer holds, ``(first, last)`` inclusive.

    Retention, ``clear()`` and compression leave them (seqs are never reused). The
    ranges come in seq order, at most ``limit``; one before the first held seq and one
    after the last (up to ``last_seq``) are included.
    """
    nxt = func.lead(_c.seq).over(order_by=_c.seq).label("next_seq")
    inner = select(_c.seq, nxt).where(_c.session_id == session_id).subquery()
    stmt = (
        select(inner.c.seq, inner.c.next_seq)
        .where(inner.c.next_seq > inner.c.seq + 1)
        .order_by(inner.c.seq)
        .limit(limit)
    )
    found = [(int(a) + 1, int(b) - 1) for a, b in conn.execute(stmt)]
    bounds = conn.execute(
        select(func.min(_c.seq), func.max(_c.seq)).where(_c.session_id == session_id)
    ).one()
    low, high = bounds
    if low is None:
        return [(1, last_seq)] if last_seq >= 1 else []
    if low > 1:
        found.insert(0, (1, int(low) - 1))
    if last_seq > high:
        found.append((int(high) + 1, last_seq))
    return found[:limit]


def rows_after(
    conn: Connection, session_id: str, after_seq: int, limit: int = 1000
) -> list[Sequence[Any]]:
    """Return whole rows ``(session_id, seq, name, created_at, data, metadata)`` above a seq.

    For ``watch``: the checkpoints that landed since the last look, in seq order.
    """
    stmt = (
        select(_c.session_id, _c.seq, _c.name, _c.created_at, _c.data, _c.metadata)
        .where(_c.session_id == session_id, _c.seq > after_seq)
        .order_by(_c.seq)
        .limit(limit)
    )
    return conn.execute(stmt).fetchall()


def stream_rows(
    conn: Connection,
    session_id: str,
    *,
    name: str | None = None,
    after: datetime | None = None,
    newest_first: bool = True,
    limit: int | None = None,
    batch: int = 2000,
) -> Iterator[Sequence[Any]]:
    """Stream rows ``(session_id, seq, name, created_at, data, metadata)`` as stored.

    Memory stays at one batch whatever the session's size, and the first row comes as
    soon as the database has it (no sort: the primary key or the name index is read in
    order). ``data`` and ``metadata`` are the stored JSON, not decoded (UTF-8 bytes on
    SQLite, with ``created_at`` as its stored text; str and datetime elsewhere).
    """
    columns: tuple[Any, ...] = (_c.created_at, _c.data, _c.metadata)
    if conn.dialect.name == "sqlite":
        # As stored: the timestamp's text (no datetime parsed to be printed again) and
        # the JSON's UTF-8 bytes (its size is their length; a preview decodes a slice).
        # Measured on 300,000 rows: ~40% of a listing went to those conversions.
        columns = (
            type_coerce(_c.created_at, String),
            cast(_c.data, LargeBinary),
            cast(_c.metadata, LargeBinary),
        )
    stmt = select(_c.session_id, _c.seq, _c.name, *columns).where(_c.session_id == session_id)
    if name is not None:
        stmt = stmt.where(_c.name == name)
    if after is not None:
        stmt = stmt.where(_c.created_at > after)
    stmt = stmt.order_by(_c.seq.desc() if newest_first else _c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    result = conn.execution_options(yield_per=batch).execute(stmt)
    try:
        yield from result
    finally:
        result.close()


def count_matching(
    conn: Connection, session_id: str, *, name: str | None = None, after: datetime | None = None
) -> int:
    """Return how many of a session's checkpoints match ``list``'s filters."""
    stmt = select(func.count()).select_from(checkpoints).where(_c.session_id == session_id)
    if name is not None:
        stmt = stmt.where(_c.name == name)
    if after is not None:
        stmt = stmt.where(_c.created_at > after)
    return int(conn.execute(stmt).scalar() or 0)


def session_state(conn: Connection, session_id: str) -> tuple[int, int, Any] | None:
    """Return ``(last_seq, held, created_at)`` of a session, or ``None`` if it does not exist.

    ``created_at`` tells a session deleted and begun again from the one a watcher knew,
    even once its new seqs have passed the old ones.
    """
    from ..schema import sessions
    from .counters import live

    state = live(conn, session_id)
    if state is None:
        return None
    created = conn.execute(
        select(sessions.c.created_at).where(sessions.c.session_id == session_id)
    ).scalar()
    return state[0], state[1], created


__all__ = [
    "BASE_SESSION_COLUMNS",
    "Entry",
    "SessionPage",
    "count_matching",
    "entries",
    "gaps",
    "neighbours",
    "rows_after",
    "select_one",
    "session_columns",
    "session_page",
    "session_state",
    "stream_rows",
    "timeline",
]
