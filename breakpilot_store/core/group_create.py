"""A group's plain creates in a few statements, not a few each (both backends).

In a group of a hundred creates the per-create statements dominate: on PostgreSQL three
round trips each (lock the session's row, read its top seq, insert), on SQLite the
savepoint, counter read, insert and release, each a trip through the driver and a
release of the GIL that the event loop's thread then waits to get back. Here the
creates at the head of a group are written together: one read of every session's
base (``SELECT ... FOR UPDATE`` on PostgreSQL, in id order, the order every writer
locks in, so two groups never deadlock; SQLite's write lock is already held), one read
of every top seq, and one insert of the rows (SQLite: one multi-row ``INSERT`` on the
bare driver; PostgreSQL: ``INSERT ... SELECT FROM unnest`` of six binary arrays, the
session ids bound as one array in the reads too). The seqs are the ones the creates
would get one by one, in the order of the calls. A session whose retention rule comes
due in the group is left to the one-by-one path (its DELETE and counter rebase), as are
any writes after the first that is not a plain create, so the order of the calls is
kept. So is a session whose lease refuses one of its creates, or whose holder's renewal
is due: the one-by-one create's guarded ``INSERT`` raises the typed error (or renews);
the lease rows are read once for the group, after the session rows are locked.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ..errors import DatabaseError
from ..schema import to_text
from . import counters, leases
from .group import Pending
from .operations import created
from .repository import _insert_values_sql, _rows_per_statement
from .retention import retention_params

# A group's sessions bound as one array, not one parameter each: a group of 1,000
# creates rendered 1,000 placeholders into each statement (SQLAlchemy's expanding
# ``IN``), which psycopg then parsed back, uncached, per call: ~60% of the writer's
# GIL-holding time at K = 1,000, in stretches of 10-20 ms that the event loop's thread
# waited behind (benchmarks/OPTIMISATIONS.md, the async API, third round). PostgreSQL
# only (SQLite's group reads run on the bare driver, _bases_tops_sqlite).
# On the bare driver, bound in binary (the text form of an array is checked for quoting
# one element at a time, in Python), rows fetched all at once: through Core, with a row
# object per session, this was ~3.5 ms of the writer's GIL-holding time per group of
# 1,000 (benchmarks/OPTIMISATIONS.md, the async API, fourth round). Two statements, not
# one with the top seq as a subquery: READ COMMITTED evaluates that before the row lock
# is granted, from a snapshot older than the commit the lock waited for.
_LOCK_MANY = (
    "SELECT session_id, base_seq, base_count FROM sessions "
    "WHERE session_id = ANY(%b::text[]) ORDER BY session_id FOR UPDATE"
)
_TOPS = (
    "SELECT session_id, max(seq) FROM checkpoints WHERE session_id = ANY(%b::text[]) "
    "GROUP BY session_id"
)
_PG_INSERT_MANY = (
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::timestamptz[], "
    "%b::text[]::json[], %b::text[]::json[])"
)

#: Most rows one of PostgreSQL's group inserts binds (see _insert_many_postgres).
ROWS_PER_INSERT = 250

#: Below this many creates the one-by-one path is as fast.
MIN_CREATES = 4

#: A large group's Python work lets go of the GIL every this many creates.
YIELD_EVERY = 128


def yield_gil() -> None:
    """Let the event loop's thread take the GIL if it is waiting for it.

    The writer thread's Python work for a group of a thousand creates runs for several
    milliseconds with only short driver calls between, and a thread waiting for the GIL
    rarely wins it back in those (it is woken, but the writer takes the GIL again
    first), so it waits for the 5 ms switch interval: event-loop lag. A sleep long
    enough for a woken thread to take the GIL (~0.1 ms) every :data:`YIELD_EVERY`
    creates shortens that wait; a group of 1,000 pays ~3 ms in a transaction of
    ~50 ms. Measured in benchmarks/OPTIMISATIONS.md (the async API).
    """
    time.sleep(0.0001)


def write_creates(
    conn: Connection, group: Sequence[Pending], *, driver: Any = None
) -> list[Pending]:
    """Write the plain creates at the head of ``group``; return the writes left to run.

    Sets ``result`` on every create written. Runs inside the group's transaction; the
    caller wraps it in a savepoint (an error here fails these creates only).

    Args:
        conn: The group's connection.
        group: The group's writes, in the order of the calls.
        driver: SQLite's bare ``sqlite3`` connection under ``conn``, for the insert.
    """
    head = 0
    while head < len(group) and group[head].op.create is not None:
        head += 1
    if head < MIN_CREATES:
        return list(group)
    creates, rest = group[:head], list(group[head:])
    ids = sorted({item.op.create.session_id for item in creates})  # type: ignore[union-attr]
    now = creates[0].op.create.now  # type: ignore[union-attr]
    if driver is None:
        read, add = _bases_tops, counters.add_sessions
    else:
        read = functools.partial(_bases_tops_sqlite, driver)
        add = functools.partial(_add_sessions_sqlite, driver)
    found = read(conn, ids)
    for attempt in range(counters.RACES):
        missing = [sid for sid in ids if sid not in found]
        if not missing:
            break
        # A session new to the store has no row yet; and on PostgreSQL a delete may
        # commit between the insert (no lock on a row that exists) and the lock: then
        # the session is new again (see counters).
        # All at once (a thousand agents start together); from the second try on,
        # locking the rows that exist, which leaves no gap for a delete.
        add(conn, missing, now, locked=attempt > 0)
        found.update(read(conn, missing))
    else:
        missing = [sid for sid in ids if sid not in found]
        if missing:
            raise counters.deleted_meanwhile(missing[0])
    bases = {sid: (row[0], row[1]) for sid, row in found.items()}
    tops = {sid: row[2] for sid, row in found.items()}
    held_leases = leases.leases_of(conn, ids, creates[0].op.create.now)  # type: ignore[union-attr]
    planned: list[tuple[Pending, int]] = []
    slow: set[str] = set()
    seq_of: dict[str, int] = {}
    for sid in ids:
        try:
            seq_of[sid] = counters.top_seq(sid, bases[sid][0], tops.get(sid))
        except DatabaseError:
            slow.add(sid)  # one by one: each of its creates fails alone, in its savepoint
    for n, item in enumerate(creates, 1):
        if n % YIELD_EVERY == 0:
            yield_gil()
        args = item.op.create
        sid = args.session_id  # type: ignore[union-attr]
        if sid in slow:
            continue
        seq = seq_of[sid] + 1
        base_seq, base_count = bases[sid]
        held = base_count + seq - base_seq
        fence = args.fence  # type: ignore[union-attr]
        if not leases.allows(held_leases.get(sid), fence) or (
            fence is not None and fence.renewal_due()
        ):
            slow.add(sid)
            continue
        if retention_params(
            sid,
            held,
            args.compress_after,  # type: ignore[union-attr]
            args.max_checkpoints,  # type: ignore[union-attr]
        ):
            slow.add(sid)
            continue
        seq_of[sid] = seq
        planned.append((item, seq))
    batch = [pair for pair in planned if pair[0].op.create.session_id not in slow]  # type: ignore[union-attr]
    if batch:
        if driver is not None:
            # On SQLite's bare driver, as many rows per statement as its parameter limit
            # allows (see repository._insert_values_sql): SQLAlchemy's executemany would
            # process every row's binds in Python, and the driver's own executemany
            # takes the GIL back after every row, each time waiting for the event
            # loop's thread to let go of it (measured: a group of ~70 creates spent
            # ~11 ms waiting against ~2.5 ms of its own work).
            per = _rows_per_statement(driver)
            for start in range(0, len(batch), per):
                chunk = batch[start : start + per]
                params: list[Any] = []
                for n, (item, seq) in enumerate(chunk, 1):
                    if n % YIELD_EVERY == 0:
                        yield_gil()
                    a = item.op.create
                    params += (a.session_id, seq, a.name, to_text(a.now), a.data, a.metadata, None)  # type: ignore[union-attr]
                driver.execute(_insert_values_sql(len(chunk)), params)
        else:
            _insert_many_postgres(conn, batch)
        for n, (item, seq) in enumerate(batch, 1):
            if n % YIELD_EVERY == 0:
                yield_gil()
            a = item.op.create
            item.value = created(a.session_id, seq, a.name, a.now, a.data, a.metadata)  # type: ignore[union-attr]
    # The sessions whose retention came due: all of their creates, one by one, in order.
    return [item for item in creates if item.op.create.session_id in slow] + rest  # type: ignore[union-attr]


def _insert_many_postgres(conn: Connection, batch: list[tuple[Pending, int]]) -> None:
    """The group's rows in a few statements: six arrays each, bound in binary, unnested.

    An ``executemany`` of the rows (SQLAlchemy's binds, then psycopg's pipelined
    statement per row) was ~2/3 of the writer's GIL-holding time at K = 1,000, in one
    call the event loop's thread waited behind: 10-15 ms of CPU per 1,000 rows against
    3-6 ms here. Binary, because psycopg's text form of an array escapes every JSON
    document in Python (slower still). At most :data:`ROWS_PER_INSERT` rows per
    statement: binding 1,000 rows held the GIL for ~2.5 ms at a stretch, and the wait
    for each statement's reply lets the event loop's thread take it (one round trip
    more per 250 rows, on a transaction of ~30 ms). On the bare driver, in the group's
    transaction.
    """
    with conn.connection.driver_connection.cursor() as cursor:
        for start in range(0, len(batch), ROWS_PER_INSERT):
            columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
            sids, seqs, names, ats, datas, metas = columns
            for item, seq in batch[start : start + ROWS_PER_INSERT]:
                a = item.op.create
                sids.append(a.session_id)  # type: ignore[union-attr]
                seqs.append(seq)
                names.append(a.name)  # type: ignore[union-attr]
                ats.append(a.now)  # type: ignore[union-attr]
                datas.append(a.data)  # type: ignore[union-attr]
                metas.append(a.metadata)  # type: ignore[union-attr]
            cursor.execute(_PG_INSERT_MANY, columns)


def _bases_tops(conn: Connection, ids: list[str]) -> dict[str, tuple[int, int, int | None]]:
    """Lock the sessions' rows (in id order) and read their bases and top seqs."""
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(_LOCK_MANY, (ids,))
        rows = cursor.fetchall()
        found = {sid: (base_seq, base_count, None) for sid, base_seq, base_count in rows}
        if found:
            cursor.execute(_TOPS, (list(found),))
            for sid, top in cursor.fetchall():
                found[sid] = (*found[sid][:2], top)
    return found


def _bases_tops_sqlite(
    driver: Any, conn: Connection, ids: list[str]
) -> dict[str, tuple[int, int, int | None]]:
    """:func:`_bases_tops` on SQLite's bare driver, in one statement.

    The group's write lock is already held. Through Core this was two statements with
    expanding ``IN`` lists, rendered per call, and a Python row object per session:
    ~1 ms of the writer's GIL-holding time per group of 100, time the event loop's
    thread waits (see benchmarks/OPTIMISATIONS.md, the async API).
    """
    found: dict[str, tuple[int, int, int | None]] = {}
    per = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    for start in range(0, len(ids), per):
        chunk = ids[start : start + per]
        rows = driver.execute(_SQLITE_BASES_TOPS.format(", ".join("?" * len(chunk))), chunk)
        for sid, base_seq, base_count, top in rows.fetchall():
            found[sid] = (base_seq, base_count, top)
    return found


def _add_sessions_sqlite(
    driver: Any, conn: Connection, ids: list[str], now: Any, *, locked: bool = False
) -> None:
    """:func:`counters.add_sessions` on SQLite's bare driver.

    The group's write lock is held: no delete can come between this and the read
    (``locked`` changes nothing).
    """
    at = to_text(now)
    driver.executemany(_SQLITE_ADD, [(sid, at) for sid in ids])


_SQLITE_ADD = (
    "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at) "
    "VALUES (?1, 0, 0, ?2, ?2) ON CONFLICT (session_id) DO NOTHING"
)
_SQLITE_BASES_TOPS = (
    "SELECT s.session_id, s.base_seq, s.base_count, "
    "(SELECT max(c.seq) FROM checkpoints AS c WHERE c.session_id = s.session_id) "
    "FROM sessions AS s WHERE s.session_id IN ({})"
)
