"""Core statements over a ``Connection`` that the caller passes in.

Every function here runs inside the caller's transaction: none begins, commits or rolls
back. Statements are built once at import, so SQLAlchemy compiles each one once per
engine and reuses it from its compiled cache.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

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

from ..checkpoint import Checkpoint
from ..codec import decode
from ..errors import CorruptDatabaseError
from ..schema import KEY, SEQ, JSONText, UTCDateTime, checkpoints, sessions, stored_time, to_text
from ..sqlite.fastpath import DriverConnection, fetch_batches
from . import counters, leases
from .counters import LIVE_COUNT, LIVE_LAST_SEQ, LIVE_UPDATED_AT
from .retention import NO_CAP, retention_delete, retention_params

if TYPE_CHECKING:
    from ..sqlite.counter_cache import CounterCache

_c = checkpoints.c
_s = sessions.c

_INSERT = insert(checkpoints)


def _guarded(postgres: bool, held: bool) -> Any:
    """``INSERT INTO checkpoints ... SELECT <the row> WHERE <the lease allows it>``."""
    row = select(
        bindparam("session_id", type_=KEY),
        bindparam("seq", type_=SEQ),
        bindparam("name", type_=KEY),
        bindparam("created_at", type_=UTCDateTime()),
        bindparam("data", type_=JSONText()),
        bindparam("metadata", type_=JSONText()),
        bindparam("origin_id", type_=KEY),
    ).where(leases.insert_guard(postgres, held))
    stmt = insert(checkpoints).from_select([column.name for column in checkpoints.columns], row)
    # psycopg reports no rowcount (-1) for INSERT ... SELECT: the row says it went in.
    return stmt.returning(_c.seq) if postgres else stmt


#: ``_GUARDED[postgres][held]``: a create's INSERT with its lease check.
_GUARDED = (
    (_guarded(False, False), _guarded(False, True)),
    (_guarded(True, False), _guarded(True, True)),
)

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
# Exports carry each row's origin_id too (provenance survives a copy or a migration).
_SESSION_ROWS = (
    select(*_COLUMNS, _c.origin_id).where(_c.session_id == bindparam("sid")).order_by(_c.seq)
)
#: The same on SQLite, with ``data`` as the stored UTF-8 bytes: the driver then skips
#: decoding it into a str that orjson would encode back to UTF-8 to parse (measured,
#: ~14% of reading and parsing the ~1 KB payloads). ``data`` has TEXT affinity, so the
#: bytes are the text's; a BLOB stored by hand arrives as the same bytes as before.
_SESSION_ROWS_SQLITE = (
    select(*_COLUMNS[:4], cast(_c.data, LargeBinary), _c.metadata, _c.origin_id)
    .where(_c.session_id == bindparam("sid"))
    .order_by(_c.seq)
)
# The point reads on SQLite, with ``data`` as the stored UTF-8 bytes (as for exports):
# orjson parses them directly, where a str would be decoded from UTF-8 by the driver
# and encoded back by orjson (measured, ~1/3 of a 1 MB get_latest).
_BY_SEQ_SQLITE = select(*_COLUMNS[:4], cast(_c.data, LargeBinary), _c.metadata).where(
    _c.session_id == bindparam("sid"), _c.seq == bindparam("seq")
)
_LATEST_SQLITE = (
    select(*_COLUMNS[:4], cast(_c.data, LargeBinary), _c.metadata)
    .where(_c.session_id == bindparam("sid"))
    .order_by(_c.seq.desc())
    .limit(1)
)
_LATEST_NAMED_SQLITE = (
    select(*_COLUMNS[:4], cast(_c.data, LargeBinary), _c.metadata)
    .where(_c.session_id == bindparam("sid"), _c.name == bindparam("name"))
    .order_by(_c.seq.desc())
    .limit(1)
)
_FIRST = select(*_COLUMNS).where(_c.session_id == bindparam("sid")).order_by(_c.seq).limit(1)
_NAME_COUNTS = (
    select(_c.name, func.count())
    .where(_c.session_id == bindparam("sid"))
    .group_by(_c.name)
    .order_by(func.min(_c.seq))
)
_CLEAR = delete(checkpoints).where(_c.session_id == bindparam("sid"))
_DELETE_SESSION = delete(sessions).where(_s.session_id == bindparam("sid"))


def row_to_checkpoint(row: Sequence[Any]) -> Checkpoint:
    """Build a :class:`Checkpoint` from ``(session_id, seq, name, created_at, data, meta)``.

    ``created_at`` arrives typed through Core, or as SQLite's stored text on the hot path.
    """
    try:
        return Checkpoint(
            id=f"{row[0]}:{row[1]}",
            name=row[2],
            timestamp=stored_time(row[3]),
            data=decode(row[4]),
            metadata=decode(row[5]),
        )
    except CorruptDatabaseError as exc:  # (a value written by hand: name its row)
        raise CorruptDatabaseError(f"checkpoint '{row[0]}:{row[1]}': {exc}") from exc.__cause__


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
    conn.execute(_INSERT, _row(session_id, seq, name, created_at, data, metadata, origin_id))


def _row(
    session_id: str,
    seq: int,
    name: str,
    created_at: datetime,
    data: str,
    metadata: str,
    origin_id: str | None = None,
) -> dict[str, Any]:
    """A checkpoint row's bind parameters, named as the table's columns."""
    return {
        "session_id": session_id,
        "seq": seq,
        "name": name,
        "created_at": created_at,
        "data": data,
        "metadata": metadata,
        "origin_id": origin_id,
    }


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
    row_lock: bool = False,
    cache: CounterCache | None = None,
    fence: Any = None,
    renew: bool = False,
) -> int:
    """Allocate a seq, insert the checkpoint and apply the retention rule; return the seq.

    The ``INSERT`` carries the lease check (see :mod:`breakpilot_store.core.leases`):
    with ``fence`` ``None`` it inserts nothing while another holder's lease is live
    (:class:`SessionLeasedError`), with a holder's fence nothing unless its token is
    still current (:class:`LeaseLostError`); ``renew`` also extends the holder's lease
    (one more statement). :data:`~breakpilot_store.core.leases.FORCE` skips the check.

    On SQLite two statements (read the counter, insert), one when ``cache`` (the hot
    path's :class:`~breakpilot_store.sqlite.counter_cache.CounterCache`) still knows the
    counter; three on PostgreSQL (lock, read, insert; ``row_lock``). No count or scan of
    the session, and the session's row is only written when the retention rule deletes
    something (see :mod:`breakpilot_store.core.counters`).
    """
    seq, held = counters.next_seq(conn, session_id, now, row_lock=row_lock, cache=cache)
    if fence is leases.FORCE:
        insert_checkpoint(conn, session_id, seq, name, now, data, metadata)
    else:
        # The lease check rides in the INSERT itself: no statement of its own.
        if fence is not None and renew:
            leases.check(conn, session_id, fence, now)  # renews, or raises LeaseLostError
        params = _row(session_id, seq, name, now, data, metadata)
        if fence is not None:
            params["token"] = fence.token
        statement = _GUARDED[row_lock][fence is not None]
        result = conn.execute(statement, params)
        if (result.fetchone() is None) if row_lock else (result.rowcount != 1):
            raise leases.refusal(conn, session_id, fence, now)
    params = retention_params(session_id, held, compress_after, max_checkpoints)
    if params is not None:
        held -= conn.execute(retention_delete(), params).rowcount
        # A write that is not a plain create: the row takes the exact counter.
        counters.rebase(conn, session_id, seq, held, now)
    if cache is not None:
        # Whose lease check this create passed: 0 for no lease, else the holder's token.
        proof = None if fence is leases.FORCE else (0 if fence is None else fence.token)
        cache.stage(session_id, seq, held, proof)
    return seq


#: A create as one statement (SQLite, autocommit): the checkpoint goes in only if no
#: other connection has committed since ``version`` was read (see counter_cache), and
#: only if the lease allows it (anyone: no live lease; a holder: its token current).
#: ``data`` may be bound as the JSON's UTF-8 bytes (``_Pin.text``): the cast stores
#: them as TEXT, unchanged, in a UTF-8 database.
_APPEND_SQL = (
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT :session_id, :seq, :name, :created_at, CAST(:data AS TEXT), :metadata "
    "FROM pragma_data_version WHERE data_version = :version"
)
#: When the connection's previous create in the session proved the same writer's lease
#: check and nobody has committed since (see counter_cache), the check still holds.
_APPEND_PROVEN = text(_APPEND_SQL).bindparams(bindparam("created_at", type_=UTCDateTime()))
_APPEND_PROVEN_ORDER = ("session_id", "seq", "name", "created_at", "data", "metadata", "version")
_APPEND = text(
    _APPEND_SQL + " AND NOT EXISTS (SELECT 1 FROM leases WHERE session_id = :session_id "
    "AND owner IS NOT NULL AND expires_at > :created_at)"
).bindparams(bindparam("created_at", type_=UTCDateTime()))
_APPEND_ORDER = (
    "session_id", "seq", "name", "created_at", "data", "metadata", "version",
    "session_id", "created_at",
)  # fmt: skip
_APPEND_HELD = text(
    _APPEND_SQL + " AND EXISTS (SELECT 1 FROM leases WHERE session_id = :session_id "
    "AND token = :token AND owner IS NOT NULL)"
).bindparams(bindparam("created_at", type_=UTCDateTime()))
_APPEND_HELD_ORDER = (
    "session_id", "seq", "name", "created_at", "data", "metadata", "version",
    "session_id", "token",
)  # fmt: skip


def append_if_unchanged(
    conn: DriverConnection,
    session_id: str,
    seq: int,
    name: str,
    created_at: datetime,
    data: str | bytes,
    metadata: str,
    version: Any,
    token: int | None = None,
    proven: bool = False,
) -> bool:
    """Insert a checkpoint at ``seq`` unless another connection committed since ``version``.

    Nor while the session's lease stands in the way: with ``token`` ``None`` while
    anyone holds a live lease; with a holder's ``token`` unless it is still current.
    ``proven``: the same writer's check passed in this connection's previous create and
    an unchanged ``version`` proves nobody changed the lease since, so the statement
    leaves the check out (an unleased agent's create then costs what it did before
    leases existed).

    For SQLite's hot path, in autocommit mode: the single statement is the whole
    transaction (it takes the write lock before it reads ``data_version``, so nobody can
    commit in between). The caller knows ``seq`` from what this connection's own
    previous create left, which an unchanged ``data_version`` proves current.

    Returns:
        Whether the row was inserted (and committed).
    """
    stamp = to_text(created_at)
    if proven:
        values = (session_id, seq, name, stamp, data, metadata, version)
        return conn.execute_in_order(_APPEND_PROVEN, _APPEND_PROVEN_ORDER, values).rowcount == 1
    if token is None:
        values = (session_id, seq, name, stamp, data, metadata, version, session_id, stamp)
        return conn.execute_in_order(_APPEND, _APPEND_ORDER, values).rowcount == 1
    values = (session_id, seq, name, stamp, data, metadata, version, session_id, token)
    return conn.execute_in_order(_APPEND_HELD, _APPEND_HELD_ORDER, values).rowcount == 1


# PostgreSQL's plain create as ONE statement (one round trip, autocommit). The session's
# row is upserted and thereby locked (a concurrent writer of the session waits for it,
# and then reads the row's newest version, which READ COMMITTED re-fetches for a row
# it waited for), and it is rebased to the exact counter: base_seq = the new seq,
# base_count = the held count, base_at = now. On SQLite a create leaves the row alone
# (one B-tree page less per commit); here updating the row costs what locking it cost
# (a heap-only tuple on the same page against a lock record), and it is what lets the
# seq be allocated in the same statement: a statement's snapshot predates the lock
# wait, so the top seq read by a subquery may miss the checkpoint of the writer just
# waited for, but that writer, if it ran this statement, rebased the row past it. (A
# writer that inserts above the base without rebasing, i.e. an older version of the
# store, can make the new seq collide with its row: the primary key refuses it and
# the caller runs the full create, :func:`create_checkpoint`.) The row is updated, and
# the checkpoint inserted, only while the retention rule is not due (the session then
# holds at most ``max_held``); otherwise nothing changes, no row is returned, and the
# caller runs the full create, which applies the rule.
#
# Leases. The proposed row is made only if the lease lets this writer write
# ({guard}: no live lease for an unleased writer, its own token held for a holder), as
# the statement's snapshot sees ``leases``; it carries the token held then (NULL if
# none) as its ``lease_token``. A lease acquired or released after that snapshot
# (while this statement waited for the session's row, which acquisition and release
# lock and whose ``lease_token`` they rewrite) is invisible to the snapshot, even to a
# locking read when the acquisition inserted the lease row; but the conflict arm's
# WHERE reads the locked row's newest version, so it compares that row's
# ``lease_token`` with the snapshot's: any acquisition, takeover or release in between
# changed it, and then nothing is written and the full create (which reads the lease
# after locking the row) says why. Renewals do not touch the row: they never make a
# lease that this writer may not write under.
_PG_CREATE_SQL = (
    "WITH s AS ("
    "INSERT INTO sessions AS s (session_id, base_seq, base_count, created_at, base_at, "
    "lease_token) "
    # The proposed row carries the top seq held + 1 (a new session's first seq).
    "SELECT :sid, coalesce((SELECT max(c.seq) FROM checkpoints c "
    "WHERE c.session_id = :sid), 0) + 1, 1, :now, :now, "
    + counters.HELD_TOKEN_SQL.format(sid=":sid")
    + " WHERE {guard} "
    "ON CONFLICT (session_id) DO UPDATE SET "
    "base_seq = greatest(s.base_seq + 1, excluded.base_seq), "
    "base_count = s.base_count + greatest(s.base_seq + 1, excluded.base_seq) - s.base_seq, "
    "base_at = excluded.base_at "
    "WHERE s.base_count + greatest(s.base_seq + 1, excluded.base_seq) - s.base_seq "
    "<= :max_held AND s.lease_token IS NOT DISTINCT FROM excluded.lease_token "
    "RETURNING s.base_seq) "
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT :sid, s.base_seq, :name, :now, CAST(:data AS JSON), CAST(:metadata AS JSON) "
    "FROM s RETURNING seq"
)
# An unleased writer's create: none while anyone holds a live lease.
PG_CREATE = text(
    _PG_CREATE_SQL.format(
        guard="NOT EXISTS (SELECT 1 FROM leases l WHERE l.session_id = :sid "
        "AND l.owner IS NOT NULL AND l.expires_at > now())"
    )
).bindparams(bindparam("now", type_=UTCDateTime()))
# A lease holder's create (one whose renewal is not due: see store.create): only while
# its token is the one held.
PG_CREATE_HELD = text(
    _PG_CREATE_SQL.format(
        guard="EXISTS (SELECT 1 FROM leases l WHERE l.session_id = :sid "
        "AND l.token = :token AND l.owner IS NOT NULL)"
    )
).bindparams(bindparam("now", type_=UTCDateTime()))


def max_held(compress_after: int | None, max_checkpoints: int | None) -> int:
    """The most checkpoints a session may hold after a create without retention being due.

    :func:`~.retention.retention_params` returns ``None`` exactly when the held count
    is at most this.
    """
    return min(
        NO_CAP if compress_after is None else compress_after,
        NO_CAP if max_checkpoints is None else max_checkpoints,
    )


def pg_create_statement(
    session_id: str,
    name: str,
    now: datetime,
    data: str,
    metadata: str,
    compress_after: int | None,
    max_checkpoints: int | None,
    token: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """PostgreSQL's plain create as one statement and its parameters (see ``PG_CREATE``).

    Run alone, as its own transaction, it returns the new seq; no row means the
    retention rule is due or the lease refused it (nothing was written), and a unique
    violation that a writer of an older version raced it: in all cases run
    :func:`create_checkpoint` (which says why a lease refused it). ``token``: a lease
    holder's (``PG_CREATE_HELD``), else ``None``.
    """
    params = {
        "sid": session_id,
        "name": name,
        "now": now,
        "data": data,
        "metadata": metadata,
        "max_held": max_held(compress_after, max_checkpoints),
    }
    if token is None:
        return PG_CREATE, params
    params["token"] = token
    return PG_CREATE_HELD, params


#: Rows for :func:`insert_rows`: ``(seq, name, created_at, data, metadata, origin_id)``.
ImportRow = tuple[int, str, datetime, str, str, str | None]

_INSERT_COLUMNS = ", ".join(column.name for column in checkpoints.columns)


@functools.cache
def _insert_values_sql(n: int) -> str:
    """``INSERT INTO checkpoints (...) VALUES (?, ...), ...`` for ``n`` rows (SQLite).

    A batch of rows in one statement runs in one ``sqlite3_step``, with the GIL released
    throughout, so that a parser on another thread is not held up (see pipeline); and a
    failed statement is undone whole. ``executemany`` takes the GIL back after every
    row, and rows sent as one JSON document cost SQLite ~5 µs each to unpack.
    """
    placeholders = "(" + ", ".join("?" * len(checkpoints.columns)) + ")"
    return f"INSERT INTO checkpoints ({_INSERT_COLUMNS}) VALUES " + ", ".join([placeholders] * n)


def _rows_per_statement(driver: Any) -> int:
    """How many rows fit one SQLite statement (32,766 parameters by default, 999 before 3.32)."""
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(limit // len(checkpoints.columns), 1)


#: PostgreSQL's bulk path: COPY, ~2x the executemany it replaced (19 against 41 ms per
#: 1,000 rows on a local server).
_COPY = f"COPY checkpoints ({_INSERT_COLUMNS}) FROM STDIN"


def insert_rows(conn: Connection, session_id: str, rows: Sequence[ImportRow]) -> None:
    """Insert a batch of checkpoint rows of ``session_id`` (imports).

    ``data``/``metadata`` are already-encoded JSON text, as for :func:`insert_checkpoint`.
    On SQLite as many rows as its parameter limit allows go in each statement; on
    PostgreSQL they go in one ``COPY``.
    """
    if not rows:
        return
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            for seq, name, created_at, data, metadata, origin_id in rows:
                copy.write_row((session_id, seq, name, created_at, data, metadata, origin_id))
        return
    per = _rows_per_statement(driver)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        params: list[Any] = []
        for seq, name, created_at, data, metadata, origin_id in chunk:
            params += (session_id, seq, name, to_text(created_at), data, metadata, origin_id)
        driver.execute(_insert_values_sql(len(chunk)), params)


def insert_new_rows(conn: Connection, session_id: str, rows: Sequence[ImportRow]) -> bool:
    """Insert a batch as :func:`insert_rows` does, or none of it if a row is stored already.

    An import tries this before it looks any entry up: the primary key and the unique
    origin index refuse a row whose id is stored, and then nothing of the batch is
    written (SQLite undoes a failed statement alone; elsewhere a savepoint does) and the
    transaction goes on.

    Returns:
        Whether the rows were written; ``False`` if one collided with a stored row.
    """
    one_statement = conn.dialect.name == "sqlite" and len(rows) <= _rows_per_statement(
        conn.connection.driver_connection
    )
    try:
        with contextlib.nullcontext() if one_statement else conn.begin_nested():
            insert_rows(conn, session_id, rows)
    except conn.dialect.dbapi.IntegrityError:  # the driver's own (COPY, sqlite3 directly)
        return False
    return True


def park_rows(conn: Connection, session_id: str, above: int, upto: int) -> None:
    """Move the rows at seqs ``above + k`` (``0 < k <= upto - above``) to seq ``-k``.

    An import's foreign entries are numbered above the session's counter as they come;
    when a later entry of the session's own turns out to hold a seq up there, those
    already written step aside to where :func:`renumber_pending` finds them, in order.
    """
    conn.execute(
        update(checkpoints)
        .where(_c.session_id == session_id, _c.seq > above, _c.seq <= upto)
        .values(seq=above - _c.seq)
    )


def fetch_statement(
    session_id: str, seq: int, *, sqlite: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The statement (and its parameters) that reads checkpoint ``seq`` of the session."""
    return (_BY_SEQ_SQLITE if sqlite else _BY_SEQ), {"sid": session_id, "seq": seq}


def fetch_latest_statement(
    session_id: str, name: str | None, *, sqlite: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The statement (and its parameters) that reads the session's newest checkpoint."""
    if name is None:
        return (_LATEST_SQLITE if sqlite else _LATEST), {"sid": session_id}
    return (_LATEST_NAMED_SQLITE if sqlite else _LATEST_NAMED), {"sid": session_id, "name": name}


def _on_sqlite(conn: Any) -> bool:
    """Whether ``conn`` (Core, or the SQLite hot path's driver connection) is SQLite's."""
    return type(conn) is DriverConnection or conn.dialect.name == "sqlite"


def fetch(conn: Connection, session_id: str, seq: int) -> Checkpoint | None:
    """Return checkpoint ``seq`` of ``session_id``, or ``None``."""
    row = conn.execute(*fetch_statement(session_id, seq, sqlite=_on_sqlite(conn))).fetchone()
    return row_to_checkpoint(row) if row is not None else None


def fetch_latest(conn: Connection, session_id: str, name: str | None = None) -> Checkpoint | None:
    """Return the highest-seq checkpoint of the session (with ``name``, if given)."""
    statement = fetch_latest_statement(session_id, name, sqlite=_on_sqlite(conn))
    row = conn.execute(*statement).fetchone()
    return row_to_checkpoint(row) if row is not None else None


def fetch_first(conn: Connection, session_id: str) -> Checkpoint | None:
    """Return the lowest-seq checkpoint the session still holds, or ``None``."""
    row = conn.execute(_FIRST, {"sid": session_id}).first()
    return row_to_checkpoint(row) if row is not None else None


def count(conn: Connection, session_id: str) -> int:
    """Return how many checkpoints the session holds (0 for an unknown session)."""
    state = counters.live(conn, session_id)
    return 0 if state is None else state[1]


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

    Each row is ``(session_id, seq, name, created_at, data, metadata, origin_id)`` with ``data`` and
    ``metadata`` as stored JSON. On SQLite the rows are read on the driver connection
    under ``conn``, in ``conn``'s transaction (see
    :func:`~breakpilot_store.sqlite.fastpath.fetch_batches`): ``created_at`` is the stored
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
    # Fold first: the counter must remember the seqs of the rows about to go.
    if counters.fold(conn, session_id, now) is None:
        return 0
    removed = conn.execute(_CLEAR, {"sid": session_id}).rowcount
    counters.adjust(conn, session_id, -removed, now)
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


@dataclass(frozen=True)
class SessionInfo:
    """One session as a supervisor sees it.

    Attributes:
        session_id: The session's id.
        checkpoints: How many checkpoints it holds now.
        last_seq: The highest seq handed out (the next checkpoint gets one more).
        created_at: When the session was first written.
        updated_at: The last write (create, clear, import, compression).
        first_checkpoint_at: Timestamp of the first checkpoint held (lowest seq), if any.
        last_checkpoint_at: Timestamp of the last checkpoint held (highest seq), if any.
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
    # The first and last checkpoint by seq (as get_summary picks them): one B-tree
    # descent each, where min/max(created_at) would read every row (no time index).
    first_at = (
        select(c2.c.created_at).where(c2.c.session_id == _s.session_id).order_by(c2.c.seq).limit(1)
    ).scalar_subquery()
    last_at = (
        select(c2.c.created_at)
        .where(c2.c.session_id == _s.session_id)
        .order_by(c2.c.seq.desc())
        .limit(1)
    ).scalar_subquery()
    last_name = (
        select(c2.c.name).where(c2.c.session_id == _s.session_id).order_by(c2.c.seq.desc()).limit(1)
    ).scalar_subquery()
    stmt = select(
        _s.session_id,
        LIVE_COUNT,
        LIVE_LAST_SEQ,
        _s.created_at,
        LIVE_UPDATED_AT,
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
        stmt = stmt.where(LIVE_UPDATED_AT < idle_before)
    if session_id is not None:
        stmt = stmt.where(_s.session_id == session_id)
    return [SessionInfo(*row) for row in conn.execute(stmt)]


def delete_session(
    conn: Connection, session_id: str, *, idle_before: datetime | None = None
) -> int | None:
    """Delete a session and (by cascade) its checkpoints.

    Args:
        conn: A connection in a write transaction.
        session_id: The session.
        idle_before: Delete only if its last write is older than this, judged under
            the session's row lock (on PostgreSQL an agent may have written since the
            caller listed it; then the session is kept).

    Returns:
        How many checkpoints it held, or ``None`` if there was no such (idle) session.
    """
    if not counters.lock(conn, session_id):
        return None
    if idle_before is not None:
        state = counters.live(conn, session_id)
        if state is None or state[2] >= idle_before:
            return None
    # Delete the children explicitly rather than rely on the cascade alone: the count
    # returned is then what was really removed, and no orphan is left even on a
    # connection that has foreign keys off.
    removed = conn.execute(_CLEAR, {"sid": session_id}).rowcount
    conn.execute(_DELETE_SESSION, {"sid": session_id})
    return removed


def counters_out_of_step(conn: Connection) -> int:
    """Count the sessions whose counter disagrees with the rows they hold (for ``doctor``).

    Only a hand edit (rows deleted or inserted outside the store) can cause it.
    """
    held = select(func.count()).where(_c.session_id == _s.session_id).scalar_subquery()
    stmt = select(func.count()).select_from(sessions).where(LIVE_COUNT != held)
    return int(conn.execute(stmt).scalar() or 0)
