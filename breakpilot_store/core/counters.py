"""A session's counter: its ``sessions`` row (the base) and the live values derived from it.

A plain ``create`` does not write the session's row: it reads the base and the highest
seq held, and inserts the checkpoint above both. Writing the row too (the obvious
``UPDATE sessions SET last_seq = last_seq + 1``) is one more B-tree page in every
commit and one more statement, measured at ~20% of a create (benchmarks/). Every other
write to a session (clear, import, compression, the retention step of a create)
*folds* the creates made since into the row first. So the checkpoints above
``base_seq`` are exactly the creates since the row was written, none deleted, and:

* last seq handed out = ``coalesce(max seq above base_seq, base_seq)``;
* checkpoints held = ``base_count`` + (that last seq - ``base_seq``);
* last write = the ``created_at`` of the newest checkpoint above ``base_seq``, else
  ``base_at``.

Seqs stay gapless and are never reused: the next one is one above both the base and
every seq held. As in the rest of the repository layer, nothing here commits.

Concurrency: on SQLite every write transaction starts with ``BEGIN IMMEDIATE``, which
holds the database's write lock, so the base and the top seq can be read in one
statement. PostgreSQL runs at READ COMMITTED: a writer first locks the session's row
(``SELECT ... FOR UPDATE``), and only a statement that *starts* after the lock is
granted sees every checkpoint committed by the writer before it (a statement's
snapshot is taken when it starts, even if it then waits for the lock). Hence
``row_lock`` and the separate statements there. PostgreSQL's hot path
(:data:`~breakpilot_store.core.repository.PG_CREATE`) instead writes the row in every
plain create, rebased to the exact counter: there a row update costs what the lock did,
and the seq then comes from the row's newest version, which the upsert re-reads after
waiting for the lock. Both kinds of writer keep the invariant above.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select, text, update

from ..checkpoint import MAX_SEQ
from ..errors import CorruptDatabaseError, DatabaseError, StoreBusyError
from ..schema import UTCDateTime, checkpoints, sessions

if TYPE_CHECKING:
    from ..sqlite.counter_cache import CounterCache

_c = checkpoints.c
_s = sessions.c
_sid = bindparam("sid")
_held = checkpoints.alias("held")


def _above_base(*columns: Any) -> Any:
    """Select from the checkpoints of the outer ``sessions`` row created since its base."""
    return select(*columns).where(_held.c.session_id == _s.session_id, _held.c.seq > _s.base_seq)


#: The last seq handed out, as a column expression over ``sessions`` (correlated).
LIVE_LAST_SEQ = func.coalesce(_above_base(func.max(_held.c.seq)).scalar_subquery(), _s.base_seq)
#: How many checkpoints the session holds.
LIVE_COUNT = _s.base_count + LIVE_LAST_SEQ - _s.base_seq
#: When the session was last written.
LIVE_UPDATED_AT = func.coalesce(
    _above_base(_held.c.created_at).order_by(_held.c.seq.desc()).limit(1).scalar_subquery(),
    _s.base_at,
    type_=UTCDateTime(),
)

# SQLite: the base and the top seq in one statement (BEGIN IMMEDIATE holds the write
# lock). max(seq) over the primary key is one B-tree descent, whatever the length.
_BASE_AND_TOP = select(
    _s.base_seq,
    _s.base_count,
    select(func.max(_c.seq)).where(_c.session_id == _sid).scalar_subquery(),
).where(_s.session_id == _sid)
# PostgreSQL: lock the row, then read the top seq in a statement of its own.
_LOCK = select(_s.base_seq, _s.base_count).where(_s.session_id == _sid).with_for_update()
_TOP = select(func.max(_c.seq)).where(_c.session_id == _sid)
# Plain SQL that both backends speak (a dialect-specific insert construct would import
# SQLAlchemy's PostgreSQL dialect on every cold start).
#: The token of the lease held on the session ``{sid}`` names (NULL while none is held):
#: what ``sessions.lease_token`` mirrors, written once for every statement that sets or
#: checks the mirror (``str.format`` it with ``sid``: a parameter or a column).
HELD_TOKEN_SQL = "(SELECT l.token FROM leases l WHERE l.session_id = {sid} AND l.owner IS NOT NULL)"
# A new row carries the token of a lease still held on the session (a session deleted
# and made again while leased keeps its lease: see ``sessions.lease_token``).
_ADD = text(
    "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at, lease_token) "
    f"SELECT :sid, 0, 0, :now, :now, {HELD_TOKEN_SQL.format(sid=':sid')} "
    "WHERE true ON CONFLICT (session_id) DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))
# _ADD that also locks a row that exists: for a write that lost the race below once.
# ``DO UPDATE`` (of nothing) locks the conflicting row, and where a delete removes it
# meanwhile PostgreSQL retries the insert itself: no gap left for a delete to commit in.
# Not the first try: it writes a new version of a row that exists (a dead tuple).
_ADD_LOCKED = text(
    "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at, lease_token) "
    f"SELECT :sid, 0, 0, :now, :now, {HELD_TOKEN_SQL.format(sid=':sid')} "
    "WHERE true ON CONFLICT (session_id) DO UPDATE SET session_id = excluded.session_id"
).bindparams(bindparam("now", type_=UTCDateTime()))
_FOLD = (
    update(sessions)
    .where(_s.session_id == _sid)
    # Every right-hand side reads the row as it was before this UPDATE. Folding is
    # not activity: base_at takes the last write's time, not now (a write that then
    # changes something sets now itself), so a no-op compress, clear or import never
    # makes an idle session look busy to prune or `sessions --idle-for`.
    .values(base_seq=LIVE_LAST_SEQ, base_count=LIVE_COUNT, base_at=LIVE_UPDATED_AT)
    .returning(_s.base_seq, _s.base_count)
)
_REBASE = (
    update(sessions)
    .where(_s.session_id == _sid)
    .values(base_seq=bindparam("seq"), base_count=bindparam("held"), base_at=bindparam("now"))
)
_ADJUST = (
    update(sessions)
    .where(_s.session_id == _sid)
    .values(base_count=_s.base_count + bindparam("delta"), base_at=bindparam("now"))
)
_LIVE = select(LIVE_LAST_SEQ, LIVE_COUNT, LIVE_UPDATED_AT).where(_s.session_id == _sid)
# SQLite: changes exactly when another connection has committed (see counter_cache).
_DATA_VERSION = text("PRAGMA data_version")


def next_seq(
    conn: Any,
    session_id: str,
    now: datetime,
    *,
    row_lock: bool,
    cache: CounterCache | None = None,
) -> tuple[int, int]:
    """Allocate the seq of a new checkpoint in ``session_id`` (creating the session if new).

    Args:
        conn: A connection in a write transaction (a Core ``Connection`` or the hot
            path's driver connection).
        session_id: The session.
        now: The time to record if the session is new.
        row_lock: Lock the session's row first (PostgreSQL; see the module docstring).
        cache: The hot path's counter cache (SQLite): a hit skips the read of the row.

    Returns:
        ``(seq, held)``: the new seq, and how many checkpoints the session holds once
        a checkpoint with that seq is inserted.
    """
    if row_lock:
        base = conn.execute(_LOCK, {"sid": session_id}).fetchone()
        for attempt in range(RACES):
            if base is not None:
                break
            # A delete may commit between the insert (which takes no lock on a row
            # that exists) and the lock: then the session is new again.
            add_session(conn, session_id, now, locked=attempt > 0)
            base = conn.execute(_LOCK, {"sid": session_id}).fetchone()
        else:
            raise deleted_meanwhile(session_id)
        base_seq, base_count = base
        top = conn.execute(_TOP, {"sid": session_id}).scalar()
    else:
        if cache is not None:
            version = conn.execute(_DATA_VERSION, {}).fetchone()[0]
            known = cache.lookup(version, session_id)
            if known is not None:
                return known[0] + 1, known[1] + 1
        row = conn.execute(_BASE_AND_TOP, {"sid": session_id}).fetchone()
        if row is None:
            add_session(conn, session_id, now)
            # Rows may be there without their session's row (deleted by hand in a shell
            # with foreign keys off): numbering goes on above them, as on PostgreSQL.
            # Assumed empty, every create of the session hit their seqs, for good.
            row = (0, 0, conn.execute(_TOP, {"sid": session_id}).fetchone()[0])
        base_seq, base_count, top = row
    seq = top_seq(session_id, base_seq, top) + 1
    # Everything above the base is a create since it (seq - 1 - base_seq of them,
    # possibly none), plus the new one.
    return seq, base_count + seq - base_seq


def top_seq(session_id: str, base_seq: Any, top: int | None) -> int:
    """The highest seq a session has handed out: its row's base or its highest row.

    Raises:
        CorruptDatabaseError: The row's counter is not a number (edited by hand).
        DatabaseError: The session has handed out every seq a database can store.
    """
    if type(base_seq) is not int:
        raise CorruptDatabaseError(
            f"session {session_id!r}: its counter (sessions.base_seq) is not an integer "
            f"({base_seq!r:.40}); it was not written by this store: see `breakpilot-store doctor`"
        )
    last = max(base_seq, top or 0)
    if last >= MAX_SEQ:
        raise DatabaseError(
            f"session {session_id!r} has handed out every seq up to {MAX_SEQ}; "
            "nothing was written (write on under another session id)"
        )
    return last


#: How often a write re-creates a session that concurrent deletes keep removing
#: between its insert and its lock (PostgreSQL) before giving up with StoreBusyError.
#: From the second try on the insert locks the row (``_ADD_LOCKED``), so the loop ends
#: there; the bound stays as a guard, not a limit a race can reach.
RACES = 20


def deleted_meanwhile(session_id: str) -> StoreBusyError:
    """The error a write raises when deletes keep winning the race (see RACES)."""
    return StoreBusyError(
        f"session {session_id!r} was deleted by other connections {RACES} times while "
        "this write was creating it again; nothing was written"
    )


def add_and_fold(conn: Connection, session_id: str, now: datetime) -> tuple[int, int]:
    """Create the session if missing, then lock and fold it: ``(last_seq, held)``.

    On PostgreSQL ``INSERT ... ON CONFLICT DO NOTHING`` takes no lock on a row that
    exists, so a ``delete_session``/``prune_sessions`` may commit between it and the
    lock; the session is then created again (the write lands after the delete, as if
    it had started after it). SQLite's write lock, held from ``BEGIN IMMEDIATE``,
    leaves no such gap.

    Raises:
        StoreBusyError: Deletes kept winning the race (:data:`RACES` times).
    """
    for attempt in range(RACES):
        add_session(conn, session_id, now, locked=attempt > 0)
        folded = fold(conn, session_id, now)
        if folded is not None:
            return folded
    raise deleted_meanwhile(session_id)


def add_session(conn: Any, session_id: str, now: datetime, *, locked: bool = False) -> None:
    """Create the session's row if it does not exist (counter at 0).

    ``locked``: also lock the row if it exists (a write that lost a race to a delete
    once; see ``_ADD_LOCKED``).
    """
    conn.execute(_ADD_LOCKED if locked else _ADD, {"sid": session_id, "now": now})


def add_sessions(conn: Any, session_ids: list[str], now: datetime, *, locked: bool = False) -> None:
    """:func:`add_session` for many sessions in one ``executemany`` (a group's new ones).

    With ``locked``, in the order given (sorted: the order every writer locks in).
    """
    rows = [{"sid": sid, "now": now} for sid in session_ids]
    conn.execute(_ADD_LOCKED if locked else _ADD, rows)


def lock(conn: Connection, session_id: str) -> bool:
    """Lock the session's row until commit (PostgreSQL; SQLite's write lock covers it).

    Returns:
        Whether the session exists.
    """
    return conn.execute(_LOCK, {"sid": session_id}).fetchone() is not None


def fold(conn: Connection, session_id: str, now: datetime) -> tuple[int, int] | None:
    """Lock the session and write its live counter into its row (before any other write).

    ``now`` is not recorded: folding is not activity (see ``_FOLD``); it is kept in
    the signature for the callers that go on to write.

    Returns:
        ``(last_seq, held)`` now stored in the row, or ``None`` for an unknown session.
    """
    if not lock(conn, session_id):
        return None
    row = conn.execute(_FOLD, {"sid": session_id}).fetchone()
    return int(row[0]), int(row[1])


def rebase(conn: Any, session_id: str, last_seq: int, held: int, now: datetime) -> None:
    """Set the session's row to a counter the caller knows exactly (seq and held)."""
    conn.execute(_REBASE, {"sid": session_id, "seq": last_seq, "held": held, "now": now})


_ADJUST_COUNT = (
    update(sessions)
    .where(_s.session_id == _sid)
    .values(base_count=_s.base_count + bindparam("delta"))
)
_SET_TIMES = (
    update(sessions)
    .where(_s.session_id == _sid)
    .values(
        created_at=bindparam("created", type_=UTCDateTime()),
        base_at=bindparam("updated", type_=UTCDateTime()),
    )
)


def set_times(
    conn: Connection, session_id: str, created_at: datetime, updated_at: datetime
) -> None:
    """Give a folded session the creation and last-write times of its source (a copy).

    Its last write is ``base_at`` while no checkpoint was created above its base; a
    create since then is newer and stays the last write.
    """
    conn.execute(_SET_TIMES, {"sid": session_id, "created": created_at, "updated": updated_at})


def adjust(conn: Connection, session_id: str, delta: int, now: datetime | None = None) -> None:
    """Add ``delta`` (may be negative) to the held count of a folded session's row.

    A change (``delta`` not 0) is a write at ``now`` (given: the session's last write
    moves there); no change writes nothing.
    """
    if delta and now is not None:
        conn.execute(_ADJUST, {"sid": session_id, "delta": delta, "now": now})
    elif delta:
        conn.execute(_ADJUST_COUNT, {"sid": session_id, "delta": delta})


def live(conn: Connection, session_id: str) -> tuple[int, int, datetime] | None:
    """Return ``(last_seq, held, updated_at)`` of a session, or ``None`` if unknown."""
    row = conn.execute(_LIVE, {"sid": session_id}).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), row[2])
