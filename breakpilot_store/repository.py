"""Core statements over a ``Connection`` that the caller passes in.

Every function here runs inside the caller's transaction: none begins, commits or rolls
back. Statements are built once at import, so SQLAlchemy compiles each one once per
engine and reuses it from its compiled cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from .checkpoint import Checkpoint
from .codec import decode
from .fastpath import executemany, fetch_batches
from .retention import retention_delete, retention_params
from .schema import UTCDateTime, checkpoints, sessions

_c = checkpoints.c
_s = sessions.c

#: Allocate ``n`` seqs for a session (creating it if new) and lock its row until commit.
#: One statement, safe across processes on both backends: the row lock serialises
#: concurrent allocators, and RETURNING hands back the new counter.
_ALLOCATE = text(
    "INSERT INTO sessions (session_id, last_seq, checkpoint_count, created_at, updated_at) "
    "VALUES (:sid, :n, :n, :now, :now) "
    "ON CONFLICT (session_id) DO UPDATE SET "
    "last_seq = sessions.last_seq + :n, "
    "checkpoint_count = sessions.checkpoint_count + :n, "
    "updated_at = excluded.updated_at "
    "RETURNING last_seq, checkpoint_count"
).bindparams(bindparam("now", type_=UTCDateTime()))

_INSERT = insert(checkpoints)

_COLUMNS = (_c.session_id, _c.seq, _c.name, _c.created_at, _c.data, _c.metadata)

_BY_SEQ = select(*_COLUMNS).where(_c.session_id == bindparam("sid"), _c.seq == bindparam("seq"))
_LATEST = (
    select(*_COLUMNS).where(_c.session_id == bindparam("sid")).order_by(_c.seq.desc()).limit(1)
)
_LATEST_NAMED = (
    select(*_COLUMNS)
    .where(_c.session_id == bindparam("sid"), _c.name == bindparam("name"))
    .order_by(_c.seq.desc())
    .limit(1)
)
#: A whole session in seq order (exports): bound by name so that it compiles once.
_SESSION_ROWS = select(*_COLUMNS).where(_c.session_id == bindparam("sid")).order_by(_c.seq)
#: The same on SQLite, with ``data`` as the stored UTF-8 bytes: the driver then skips
#: decoding it into a str that orjson would encode back to UTF-8 to parse (measured,
#: ~14% of reading and parsing the ~1 KB payloads). ``data`` has TEXT affinity, so the
#: bytes are the text's; a BLOB stored by hand arrives as the same bytes as before.
_SESSION_ROWS_SQLITE = (
    select(*_COLUMNS[:4], cast(_c.data, LargeBinary), _c.metadata)
    .where(_c.session_id == bindparam("sid"))
    .order_by(_c.seq)
)
_FIRST = select(*_COLUMNS).where(_c.session_id == bindparam("sid")).order_by(_c.seq).limit(1)
_COUNT = select(_s.checkpoint_count).where(_s.session_id == bindparam("sid"))
_NAME_COUNTS = (
    select(_c.name, func.count())
    .where(_c.session_id == bindparam("sid"))
    .group_by(_c.name)
    .order_by(func.min(_c.seq))
)
_CLEAR = delete(checkpoints).where(_c.session_id == bindparam("sid"))
_ADJUST_COUNT = (
    update(sessions)
    .where(_s.session_id == bindparam("sid"))
    .values(checkpoint_count=_s.checkpoint_count + bindparam("delta"))
)


def row_to_checkpoint(row: Sequence[Any]) -> Checkpoint:
    """Build a :class:`Checkpoint` from ``(session_id, seq, name, created_at, data, meta)``.

    ``created_at`` arrives typed through Core, or as SQLite's stored text on the hot path.
    """
    created_at = row[3]
    return Checkpoint(
        id=f"{row[0]}:{row[1]}",
        name=row[2],
        timestamp=datetime.fromisoformat(created_at) if type(created_at) is str else created_at,
        data=decode(row[4]),
        metadata=decode(row[5]),
    )


def allocate(conn: Connection, session_id: str, now: datetime, n: int = 1) -> tuple[int, int]:
    """Reserve ``n`` seqs for ``session_id`` and count ``n`` more checkpoints held.

    With ``n=0`` it only makes sure the session exists and locks its row.

    Returns:
        ``(last_seq, checkpoint_count)`` after the allocation.
    """
    row = conn.execute(_ALLOCATE, {"sid": session_id, "n": n, "now": now}).fetchone()
    return row[0], row[1]


def insert_checkpoint(
    conn: Connection,
    session_id: str,
    seq: int,
    name: str,
    created_at: datetime,
    data: str,
    metadata: str,
    origin_id: str | None = None,
) -> None:
    """Insert one checkpoint row; ``data``/``metadata`` are already-encoded JSON text."""
    conn.execute(
        _INSERT,
        {
            "session_id": session_id,
            "seq": seq,
            "name": name,
            "created_at": created_at,
            "data": data,
            "metadata": metadata,
            "origin_id": origin_id,
        },
    )


def create_checkpoint(
    conn: Connection,
    session_id: str,
    name: str,
    now: datetime,
    data: str,
    metadata: str,
    *,
    compress_after: int | None,
    max_checkpoints: int | None,
) -> int:
    """Allocate a seq, insert the checkpoint and apply the retention rule; return the seq.

    Three statements in the common case (allocate, insert, nothing to delete), and no
    count or scan of the session: the held count comes back from the allocation.
    """
    seq, held = allocate(conn, session_id, now)
    insert_checkpoint(conn, session_id, seq, name, now, data, metadata)
    params = retention_params(session_id, held, compress_after, max_checkpoints)
    if params is not None:
        adjust_count(conn, session_id, -conn.execute(retention_delete(), params).rowcount)
    return seq


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert many checkpoint rows in one executemany (keys as :func:`insert_checkpoint`).

    The row dicts are consumed: on SQLite their timestamps are replaced by stored text.
    """
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        # The same transaction, on the driver connection underneath: see fastpath.
        executemany(conn.connection.driver_connection, _INSERT, rows)
    else:
        conn.execute(_INSERT, rows)


def adjust_count(conn: Connection, session_id: str, delta: int) -> None:
    """Add ``delta`` (may be negative) to the session's held-checkpoint counter."""
    if delta:
        conn.execute(_ADJUST_COUNT, {"sid": session_id, "delta": delta})


def fetch(conn: Connection, session_id: str, seq: int) -> Checkpoint | None:
    """Return checkpoint ``seq`` of ``session_id``, or ``None``."""
    row = conn.execute(_BY_SEQ, {"sid": session_id, "seq": seq}).fetchone()
    return row_to_checkpoint(row) if row is not None else None


def fetch_latest(conn: Connection, session_id: str, name: str | None = None) -> Checkpoint | None:
    """Return the highest-seq checkpoint of the session (with ``name``, if given)."""
    if name is None:
        row = conn.execute(_LATEST, {"sid": session_id}).fetchone()
    else:
        row = conn.execute(_LATEST_NAMED, {"sid": session_id, "name": name}).fetchone()
    return row_to_checkpoint(row) if row is not None else None


def fetch_first(conn: Connection, session_id: str) -> Checkpoint | None:
    """Return the lowest-seq checkpoint the session still holds, or ``None``."""
    row = conn.execute(_FIRST, {"sid": session_id}).first()
    return row_to_checkpoint(row) if row is not None else None


def count(conn: Connection, session_id: str) -> int:
    """Return how many checkpoints the session holds (0 for an unknown session)."""
    value = conn.execute(_COUNT, {"sid": session_id}).scalar()
    return int(value or 0)


def name_counts(conn: Connection, session_id: str) -> dict[str, int]:
    """Return ``{name: count}`` in order of each name's first appearance."""
    return {name: n for name, n in conn.execute(_NAME_COUNTS, {"sid": session_id})}


def select_checkpoints(
    session_id: str,
    *,
    name: str | None = None,
    after: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> Any:
    """Build the SELECT for a session's checkpoints with the given filters."""
    stmt = select(*_COLUMNS).where(_c.session_id == session_id)
    if name is not None:
        stmt = stmt.where(_c.name == name)
    if after is not None:
        stmt = stmt.where(_c.created_at > after)
    if start is not None:
        stmt = stmt.where(_c.created_at >= start)
    if end is not None:
        stmt = stmt.where(_c.created_at <= end)
    stmt = stmt.order_by(_c.seq.desc() if newest_first else _c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def list_checkpoints(conn: Connection, session_id: str, **filters: Any) -> list[Checkpoint]:
    """Return a session's checkpoints (see :func:`select_checkpoints` for filters)."""
    result = conn.execute(select_checkpoints(session_id, **filters))
    return [row_to_checkpoint(row) for row in result]


def iter_checkpoints(
    conn: Connection, session_id: str, batch: int = 1000, **filters: Any
) -> Iterator[Checkpoint]:
    """Stream a session's checkpoints without holding them all in memory."""
    result = conn.execution_options(yield_per=batch).execute(
        select_checkpoints(session_id, **filters)
    )
    for row in result:
        yield row_to_checkpoint(row)


def iter_row_batches(conn: Connection, session_id: str, size: int) -> Iterator[Sequence[Any]]:
    """Stream a session's rows in seq order, ``size`` at a time (the last batch shorter).

    Each row is ``(session_id, seq, name, created_at, data, metadata)`` with ``data`` and
    ``metadata`` as stored JSON. On SQLite the rows are read on the driver connection
    under ``conn``, in ``conn``'s transaction (see
    :func:`~breakpilot_store.fastpath.fetch_batches`): ``created_at`` is the stored
    text and ``data`` its UTF-8 bytes. Elsewhere they come through Core: ``created_at``
    an aware UTC datetime, ``data`` a str. Close the generator (or exhaust it) before
    the transaction ends.
    """
    if conn.dialect.name == "sqlite":
        yield from fetch_batches(
            conn.connection.driver_connection, _SESSION_ROWS_SQLITE, {"sid": session_id}, size
        )
        return
    result = conn.execution_options(yield_per=size).execute(_SESSION_ROWS, {"sid": session_id})
    try:
        yield from result.partitions(size)
    finally:
        result.close()


def held_seqs(conn: Connection, session_id: str) -> list[int]:
    """Return the seqs a session holds, ascending."""
    stmt = select(_c.seq).where(_c.session_id == session_id).order_by(_c.seq)
    return list(conn.execute(stmt).scalars())


def clear(conn: Connection, session_id: str, now: datetime) -> int:
    """Delete every checkpoint of the session but keep its counter; return how many."""
    removed = conn.execute(_CLEAR, {"sid": session_id}).rowcount
    conn.execute(
        update(sessions)
        .where(_s.session_id == session_id)
        .values(checkpoint_count=0, updated_at=now)
    )
    return removed


def fetch_rows_by_seq(
    conn: Connection, session_id: str, seqs: Iterable[int]
) -> dict[int, Sequence[Any]]:
    """Return the stored rows at ``seqs`` keyed by seq (used to detect import conflicts)."""
    seqs = list(seqs)
    if not seqs:
        return {}
    stmt = select(*_COLUMNS).where(_c.session_id == session_id, _c.seq.in_(seqs))
    return {row[1]: row for row in conn.execute(stmt)}


def fetch_rows_by_origin(
    conn: Connection, session_id: str, origin_ids: Iterable[str]
) -> dict[str, Sequence[Any]]:
    """Return the stored rows imported from ``origin_ids``, keyed by origin id."""
    origin_ids = list(origin_ids)
    if not origin_ids:
        return {}
    stmt = select(*_COLUMNS, _c.origin_id).where(
        # No explicit "origin_id IS NOT NULL": SQLite infers it from the IN and uses the
        # partial index for point lookups; spelt out, it became a range scan over every
        # imported row of the session, per batch (quadratic imports).
        _c.session_id == session_id,
        _c.origin_id.in_(origin_ids),
    )
    return {row[6]: row for row in conn.execute(stmt)}


def renumber_pending(conn: Connection, session_id: str, base: int) -> None:
    """Give rows parked at seq ``-k`` their final seq ``base + k`` (import's last step)."""
    conn.execute(
        update(checkpoints).where(_c.session_id == session_id, _c.seq < 0).values(seq=base - _c.seq)
    )


def set_counter(
    conn: Connection, session_id: str, last_seq: int, added: int, now: datetime
) -> None:
    """Set the session's counter after an import and count ``added`` more checkpoints."""
    conn.execute(
        update(sessions)
        .where(_s.session_id == session_id)
        .values(
            last_seq=last_seq,
            checkpoint_count=_s.checkpoint_count + added,
            updated_at=now,
        )
    )


@dataclass(frozen=True)
class SessionInfo:
    """One session as a supervisor sees it.

    Attributes:
        session_id: The session's id.
        checkpoints: How many checkpoints it holds now.
        last_seq: The highest seq ever handed out.
        created_at: When the session was first written.
        updated_at: The last write (create, clear, import, compression).
        first_checkpoint_at: Timestamp of the oldest checkpoint held, if any.
        last_checkpoint_at: Timestamp of the newest checkpoint held, if any.
        last_name: Name of the newest checkpoint held, if any.
    """

    session_id: str
    checkpoints: int
    last_seq: int
    created_at: datetime
    updated_at: datetime
    first_checkpoint_at: datetime | None
    last_checkpoint_at: datetime | None
    last_name: str | None


def list_sessions(
    conn: Connection,
    *,
    prefix: str | None = None,
    idle_before: datetime | None = None,
    session_id: str | None = None,
) -> list[SessionInfo]:
    """Return the sessions (filtered by id prefix and/or last write before a time)."""
    c2 = checkpoints.alias("c2")
    first_at = (
        select(func.min(c2.c.created_at)).where(c2.c.session_id == _s.session_id)
    ).scalar_subquery()
    last_at = (
        select(func.max(c2.c.created_at)).where(c2.c.session_id == _s.session_id)
    ).scalar_subquery()
    last_name = (
        select(c2.c.name).where(c2.c.session_id == _s.session_id).order_by(c2.c.seq.desc()).limit(1)
    ).scalar_subquery()
    stmt = select(
        _s.session_id,
        _s.checkpoint_count,
        _s.last_seq,
        _s.created_at,
        _s.updated_at,
        first_at,
        last_at,
        last_name,
    ).order_by(_s.session_id)
    if prefix:
        stmt = stmt.where(
            _s.session_id.startswith(prefix, autoescape=True),
            # SQLite's LIKE ignores ASCII case and PostgreSQL's does not: this makes the
            # match exact (case-sensitive) on both; LIKE still narrows it by index.
            func.substr(_s.session_id, 1, len(prefix)) == prefix,
        )
    if idle_before is not None:
        stmt = stmt.where(_s.updated_at < idle_before)
    if session_id is not None:
        stmt = stmt.where(_s.session_id == session_id)
    return [SessionInfo(*row) for row in conn.execute(stmt)]


def lock_session(
    conn: Connection, session_id: str, *, idle_before: datetime | None = None
) -> int | None:
    """Lock a session's row until commit and return its held count.

    ``SELECT ... FOR UPDATE`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already holds
    the database lock). With ``idle_before``, only a session whose last write is older
    qualifies; PostgreSQL re-checks that on the latest row version, so a session an agent
    wrote to in the meantime is no longer idle.

    Returns:
        The session's checkpoint count, or ``None`` if it does not exist (or is not idle).
    """
    stmt = select(_s.checkpoint_count).where(_s.session_id == session_id).with_for_update()
    if idle_before is not None:
        stmt = stmt.where(_s.updated_at < idle_before)
    return conn.execute(stmt).scalar()


def delete_session(
    conn: Connection, session_id: str, *, idle_before: datetime | None = None
) -> int | None:
    """Delete a session and (by cascade) its checkpoints.

    Args:
        conn: A connection in a write transaction.
        session_id: The session.
        idle_before: Delete only if its last write is older than this (see
            :func:`lock_session`).

    Returns:
        How many checkpoints it held, or ``None`` if there was no such (idle) session.
    """
    if lock_session(conn, session_id, idle_before=idle_before) is None:
        return None
    # Delete the children explicitly rather than rely on the cascade alone: the count
    # returned is then what was really removed, and no orphan is left even on a
    # connection that has foreign keys off.
    removed = conn.execute(_CLEAR, {"sid": session_id}).rowcount
    conn.execute(delete(sessions).where(_s.session_id == session_id))
    return removed
