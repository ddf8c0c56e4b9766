"""The saver's operations: SQL over a connection passed in, written once for both fronts.

Each public function here takes a SQLAlchemy ``Connection`` first and never begins,
commits or rolls back: :class:`BreakpilotSaver` runs it with ``CheckpointStore.run``
for the sync methods and ``AsyncCheckpointStore.run`` for the async ones (where it may
run in a SAVEPOINT of a shared transaction). Values arrive here as encoded JSON text
and leave as stored text: encoding and decoding happen outside the transaction.

Layout (see the README's LangGraph section): a (thread, namespace) is a session,
named by :func:`session_id_for` and recorded in ``langgraph_threads``; a checkpoint is
one ``checkpoints`` row whose ``name`` is its LangGraph id; pending writes live in
``langgraph_writes``. "Newest" means the highest checkpoint id (LangGraph's ids are
uuid6, ordered by time, as its own savers order them), then the highest seq.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, exists, select, text, update

from ..codec import check_key
from ..core import copying, counters
from ..core import repository as repo
from ..core.operations import Attempt
from ..errors import CheckpointValueError
from ..naming import INTEGRATION_PREFIXES, integration_prefix, thread_session_id
from ..schema import UTCDateTime, checkpoints, langgraph_threads, langgraph_writes

_c = checkpoints.c
_t = langgraph_threads.c
_w = langgraph_writes.c


class ThreadConflictError(CheckpointValueError):
    """A session id a LangGraph thread maps to is taken by something else."""


@dataclass(frozen=True)
class Target:
    """A LangGraph (thread, namespace) and the session that holds it."""

    thread_id: str
    checkpoint_ns: str
    session_id: str


def session_id_for(thread_id: str, checkpoint_ns: str) -> str:
    """The session that holds a thread's namespace: the thread id, or ``thread|ns``.

    In the thread id, ``%`` is written ``%25`` and ``|`` is written ``%7C`` (revision
    0008): thread ``a|b`` is the session ``a%7Cb``, apart from thread ``a`` namespace
    ``b`` (:func:`breakpilot_store.naming.thread_session_id`).
    """
    return thread_session_id(thread_id, checkpoint_ns)


def target(thread_id: Any, checkpoint_ns: Any = "") -> Target:
    """Check a thread id and namespace and name their session.

    Raises:
        CheckpointValueError: An empty thread id, NUL characters, or too long.
        CheckpointTypeError: A namespace that is not a str.
    """
    thread = check_key(str(thread_id), "thread_id")
    ns = "" if checkpoint_ns is None else checkpoint_ns
    if ns != "":
        ns = check_key(ns, "checkpoint_ns")
    return Target(thread, ns, check_key(session_id_for(thread, ns), "session id"))


def check_new_thread(where: Target) -> None:
    """Refuse to start a thread's session where another integration keeps its own.

    Raises:
        ThreadConflictError: The session id begins as an ADK or OpenAI session's does.
    """
    prefix = integration_prefix(where.session_id)
    if prefix is not None:
        raise ThreadConflictError(
            f"thread {where.thread_id!r} would be the session {where.session_id!r}, "
            f"and sessions beginning {prefix!r} are {INTEGRATION_PREFIXES[prefix]} "
            "integration's; use another thread_id"
        )


# -- statements ------------------------------------------------------------------------

_ROW = (_c.session_id, _c.seq, _c.name, _c.data, _c.metadata)
_ADD_THREAD = text(
    "INSERT INTO langgraph_threads (session_id, thread_id, checkpoint_ns) "
    "VALUES (:sid, :tid, :ns) ON CONFLICT DO NOTHING"
)
_IS_THREAD = exists().where(
    _t.session_id == bindparam("sid"),
    _t.thread_id == bindparam("tid"),
    _t.checkpoint_ns == bindparam("ns"),
)
_REWRITE = (
    update(checkpoints)
    .where(_c.session_id == bindparam("sid"), _c.seq == bindparam("row_seq"))
    .values(data=bindparam("data"), metadata=bindparam("meta"))
)
_ONE = (
    select(*_ROW)
    .where(_c.session_id == bindparam("sid"), _c.name == bindparam("name"), _IS_THREAD)
    .order_by(_c.seq.desc())
    .limit(1)
)
_NEWEST = (
    select(*_ROW)
    .where(_c.session_id == bindparam("sid"), _IS_THREAD)
    .order_by(_c.name.desc(), _c.seq.desc())
    .limit(1)
)
# SQLite's get_tuple as ONE statement, the checkpoint's pending writes gathered into a
# JSON array beside it: a hot read (store.run(hot=True)) on a SQLite file is a single
# statement on the bare driver, its own read transaction, so both parts come from one
# snapshot. Through Core, a get_tuple cost ~5x SqliteSaver's (benchmarks/OPTIMISATIONS.md).
# Each write carries its sort key: json_group_array's order is not guaranteed.
_IS_THREAD_SQL = (
    "EXISTS (SELECT 1 FROM langgraph_threads t WHERE t.session_id = :sid "
    "AND t.thread_id = :tid AND t.checkpoint_ns = :ns)"
)
_WITH_WRITES_SQL = (
    "SELECT c.session_id, c.seq, c.name, c.data, c.metadata, "
    "(SELECT json_group_array(json_array(w.task_path, w.task_id, w.idx, w.channel, w.value)) "
    "FROM langgraph_writes w WHERE w.session_id = c.session_id AND w.checkpoint_id = c.name) "
    "FROM checkpoints c "
)
_ONE_WITH_WRITES = text(
    _WITH_WRITES_SQL + f"WHERE c.session_id = :sid AND c.name = :name AND {_IS_THREAD_SQL} "
    "ORDER BY c.seq DESC LIMIT 1"
)
_NEWEST_WITH_WRITES = text(
    _WITH_WRITES_SQL + f"WHERE c.session_id = :sid AND {_IS_THREAD_SQL} "
    "ORDER BY c.name DESC, c.seq DESC LIMIT 1"
)
#: Everything but the newest ``keep`` of a session (retention, prune); their names.
_TRIM = text(
    "DELETE FROM checkpoints WHERE session_id = :sid AND seq NOT IN ("
    "SELECT seq FROM checkpoints WHERE session_id = :sid "
    "ORDER BY name DESC, seq DESC LIMIT :keep) RETURNING name"
)
_DELETE_SEQS = text(
    "DELETE FROM checkpoints WHERE session_id = :sid AND seq IN :seqs RETURNING name"
).bindparams(bindparam("seqs", expanding=True))
_DELETE_WRITES = delete(langgraph_writes).where(
    _w.session_id == bindparam("sid"), _w.checkpoint_id.in_(bindparam("names", expanding=True))
)
_WRITES = (
    select(_w.checkpoint_id, _w.task_id, _w.channel, _w.value)
    .where(
        _w.session_id == bindparam("sid"), _w.checkpoint_id.in_(bindparam("names", expanding=True))
    )
    .order_by(_w.checkpoint_id, _w.task_path, _w.task_id, _w.idx)
)
_THREAD_SESSIONS = (
    select(_t.session_id, _t.checkpoint_ns)
    .where(_t.thread_id == bindparam("tid"))
    .order_by(_t.checkpoint_ns)
)
_DELETE_THREAD = text(
    "DELETE FROM sessions WHERE session_id IN "
    "(SELECT session_id FROM langgraph_threads WHERE thread_id = :tid)"
)


@functools.cache
def _write_statement(
    dialect: str, replace: bool, guarded: bool = False, returning: bool = False
) -> Any:
    """Insert pending writes: replace (special channels) or keep the first (others).

    ``guarded``: only if the session is the thread's namespace (``:tid``, ``:ns``), so
    that a put_writes needs no read of the session's state first. ``returning``: a row
    for each write done.
    """
    value = "CAST(:value AS JSON)" if dialect == "postgresql" else ":value"
    on_conflict = (
        "DO UPDATE SET channel = excluded.channel, value = excluded.value, "
        "task_path = excluded.task_path"
        if replace
        else "DO NOTHING"
    )
    values = f":sid, :cid, :task_id, :idx, :channel, {value}, :task_path"
    source = (
        f"SELECT {values} WHERE EXISTS (SELECT 1 FROM langgraph_threads t "
        "WHERE t.session_id = :sid AND t.thread_id = :tid AND t.checkpoint_ns = :ns)"
        if guarded
        else f"VALUES ({values})"
    )
    return text(
        "INSERT INTO langgraph_writes "
        "(session_id, checkpoint_id, task_id, idx, channel, value, task_path) "
        f"{source} ON CONFLICT (session_id, checkpoint_id, task_id, idx) {on_conflict}"
        + (" RETURNING idx" if returning else "")
    )


@functools.cache
def _runs_statement(dialect: str) -> Any:
    run_id = (
        "(c.metadata ->> 'run_id')"
        if dialect == "postgresql"
        else "json_extract(c.metadata, '$.run_id')"
    )
    return text(
        "SELECT c.session_id, c.seq FROM checkpoints c "
        "JOIN langgraph_threads t ON t.session_id = c.session_id "
        f"WHERE {run_id} IN :runs ORDER BY c.session_id, c.seq"
    ).bindparams(bindparam("runs", expanding=True))


# -- writing ---------------------------------------------------------------------------


#: All a put needs to know, in one statement: the session's counter base and top seq,
#: its LangGraph mapping, and the seq already holding this checkpoint id (if any).
_STATE = text(
    "SELECT s.base_seq, s.base_count, "
    "(SELECT max(c.seq) FROM checkpoints c WHERE c.session_id = :sid), "
    "t.thread_id, t.checkpoint_ns, "
    "(SELECT c.seq FROM checkpoints c WHERE c.session_id = :sid AND c.name = :name "
    "ORDER BY c.seq DESC LIMIT 1) "
    "FROM sessions s LEFT JOIN langgraph_threads t ON t.session_id = s.session_id "
    "WHERE s.session_id = :sid"
)
#: A checkpoint's row on SQLite (PostgreSQL's JSON columns take the repository's insert).
_INSERT = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "VALUES (:sid, :seq, :name, :created_at, :data, :metadata)"
).bindparams(bindparam("created_at", type_=UTCDateTime()))
#: The key of ``checkpoints.data`` that holds the parent checkpoint's id.
PARENT_KEY = "parent_checkpoint_id"
_DELETE_WRITES_OF = text(
    "DELETE FROM langgraph_writes WHERE session_id = :sid AND checkpoint_id = :cid"
)


def _is_postgres(conn: Any) -> bool:
    return conn.dialect.name == "postgresql"


def _state(conn: Any, where: Target, name: str, now: datetime) -> tuple[Any, ...]:
    """The thread's session as ``(base_seq, base_count, top, stored_seq)``, made if new.

    One statement on SQLite, whose ``BEGIN IMMEDIATE`` already holds the write lock. On
    PostgreSQL the session's row is locked first, and the state read in a later
    statement, which sees what the lock's previous holder committed (see core.counters).

    Raises:
        ThreadConflictError: The session id is held by another thread or by a session
            that is not a LangGraph thread (nothing is written).
    """
    params = {"sid": where.session_id, "name": name}
    if _is_postgres(conn):
        row = _locked_state(conn, params)
    else:
        row = conn.execute(_STATE, params).fetchone()
    if row is None:
        check_new_thread(where)
        # Locked where it exists: a concurrent first put made it just now (PostgreSQL's
        # insert waited for that one's commit), and the state re-read below must be
        # read under the row's lock, or two first puts took the same next seq.
        counters.add_session(conn, where.session_id, now, locked=_is_postgres(conn))
        added = conn.execute(
            _ADD_THREAD,
            {"sid": where.session_id, "tid": where.thread_id, "ns": where.checkpoint_ns},
        ).rowcount
        if added == 1:
            return (0, 0, None, None)
        # PostgreSQL: another transaction made the session first and ours waited for it.
        row = conn.execute(_STATE, params).fetchone()
    if row[3] is None:
        raise ThreadConflictError(
            f"session {where.session_id!r} exists and is not a LangGraph thread; "
            "use another thread_id"
        )
    if (row[3], row[4]) != (where.thread_id, where.checkpoint_ns):
        raise ThreadConflictError(
            f"session {where.session_id!r} holds LangGraph thread {row[3]!r} namespace "
            f"{row[4]!r}, not thread {where.thread_id!r} namespace {where.checkpoint_ns!r}"
        )
    return (row[0], row[1], row[2], row[5])


def _locked_state(conn: Any, params: dict[str, Any]) -> Any:
    """PostgreSQL: :data:`_STATE` read under the session row's lock (``None``: no row)."""
    while True:
        locked = counters.lock(conn, params["sid"])
        row = conn.execute(_STATE, params).fetchone()
        if row is None or locked:
            return row
        # Made by another transaction between the two statements (a concurrent first
        # put): lock it before reading, or two first puts took the same next seq.


#: SQLite's put in the common case, one statement: the next seq (the counter's rule,
#: core.counters.next_seq) for a session that is this thread's namespace and does not
#: hold this checkpoint id yet. No row: a new thread, a conflict or a rewrite, which
#: the full path (:func:`_state`) sorts out. ``BEGIN IMMEDIATE`` holds the write lock.
_PUT_NEXT = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT :sid, max(s.base_seq, coalesce((SELECT max(c.seq) FROM checkpoints c "
    "WHERE c.session_id = :sid), 0)) + 1, :name, :created_at, :data, :metadata "
    "FROM sessions s JOIN langgraph_threads t ON t.session_id = s.session_id "
    "WHERE s.session_id = :sid AND t.thread_id = :tid AND t.checkpoint_ns = :ns "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.session_id = :sid AND c.name = :name) "
    "RETURNING seq"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def put(
    conn: Any,
    where: Target,
    checkpoint_id: str,
    data: str,
    metadata: str,
    now: datetime,
    keep_last: int | None,
) -> None:
    """Store a checkpoint as one row (the same id again rewrites its row in place).

    With ``keep_last``, the thread's namespace then keeps its ``keep_last`` newest
    checkpoints; the others go, with their pending writes, in this transaction.
    A ``hot`` operation of ``store.run`` (see there): on a SQLite file it runs on the
    store's bare driver connection.
    """
    sid = where.session_id
    seq = None
    if not _is_postgres(conn):
        params = {"sid": sid, "tid": where.thread_id, "ns": where.checkpoint_ns}
        params.update(name=checkpoint_id, data=data, metadata=metadata, created_at=now)
        # fetchall: the INSERT ... RETURNING must finish before COMMIT.
        found = conn.execute(_PUT_NEXT, params).fetchall()
        seq = found[0][0] if found else None
    if seq is None:
        seq = _put_full(conn, where, checkpoint_id, data, metadata, now)
        if seq is None:
            return  # rewritten in place: nothing new to trim
    if keep_last is not None:
        removed, held = _trim(conn, sid, keep_last, delta=_uses_delta(conn, sid, data, metadata))
        if removed:
            # A write that is not a plain create: the session's row takes the exact
            # counter (the trim left exactly ``held`` checkpoints).
            counters.rebase(conn, sid, seq, held, now)
            for name in removed:  # one by one: a hot operation binds no lists
                conn.execute(_DELETE_WRITES_OF, {"sid": sid, "cid": name})
            if where.checkpoint_ns == "":
                _drop_calls(conn, where.thread_id, set(removed))


#: The metadata key of LangGraph's ``DeltaChannel`` (beta): per channel, the updates and
#: supersteps since the channel's last ``_DeltaSnapshot``. A thread without it has no
#: delta channel (``CheckpointMetadata.counters_since_delta_snapshot``).
_DELTA_KEY = '"counters_since_delta_snapshot"'
#: A namespace's rows, newest first, with what the delta-aware trim reads.
#: (Core, not text(): PostgreSQL's JSON then comes back as text, as it is stored.)
_ROWS_NEWEST_FIRST = (
    select(_c.seq, _c.name, _c.metadata)
    .where(_c.session_id == bindparam("sid"))
    .order_by(_c.name.desc(), _c.seq.desc())
)
_DELETE_ONE = text("DELETE FROM checkpoints WHERE session_id = :sid AND seq = :seq")
#: A delta channel's snapshot in ``channel_values`` (the tagged type's name).
_SNAPSHOT_MARK = "_DeltaSnapshot"
_NEWEST_METADATA = (
    select(_c.metadata)
    .where(_c.session_id == bindparam("sid"))
    .order_by(_c.name.desc(), _c.seq.desc())
    .limit(3)
)


def _uses_delta(conn: Any, sid: str, data: Any, metadata: str) -> bool:
    """Whether the namespace has delta channels (see :func:`_trim`).

    Told by the new checkpoint itself, but for a snapshot step: its metadata has no
    counters, and with a custom ``serde=`` its values are opaque. Then by the metadata
    of the rows just before it (few: the window of a step or two).
    """
    if _DELTA_KEY in metadata:
        return True
    if isinstance(data, str) and _SNAPSHOT_MARK in data:
        return True
    return _recent_rows_use_delta(conn, sid)


def _recent_rows_use_delta(conn: Any, sid: str) -> bool:
    """Whether the namespace's newest rows carry delta counters (a few rows read)."""
    found = conn.execute(_NEWEST_METADATA, {"sid": sid}).fetchall()
    return any(_DELTA_KEY in row[0] for row in found)


def _trim(conn: Any, sid: str, keep: int, *, delta: bool) -> tuple[list[str], int]:
    """Remove all but the ``keep`` newest checkpoints; ``(removed names, rows held)``.

    With ``delta`` (the thread has delta channels), also keep every checkpoint a
    kept one needs to rebuild its delta channels: LangGraph rebuilds one by replaying
    the pending writes of each ancestor back to the one holding the channel's last
    snapshot (``BaseCheckpointSaver.prune``'s warning). That ancestor is, by the kept
    checkpoint's ``counters_since_delta_snapshot``, at most that many supersteps before
    it: each kept checkpoint keeps the rows whose ``step`` is at or after its own step
    less the most supersteps of any channel (one more, to be safe). Rows of other
    branches in that window stay too: kept, never lost.
    """
    if not delta:
        removed = [row[0] for row in conn.execute(_TRIM, {"sid": sid, "keep": keep})]
        return removed, keep
    rows = conn.execute(_ROWS_NEWEST_FIRST, {"sid": sid}).fetchall()
    needs = [need for _, _, meta in rows[:keep] if (need := _delta_floor(meta)) is not None]
    floor = min(needs, default=None)
    removed = []
    for seq, name, meta in rows[keep:]:
        step = _step(meta)
        if floor is None or (step is not None and step < floor):
            conn.execute(_DELETE_ONE, {"sid": sid, "seq": seq})
            removed.append(name)
    return removed, len(rows) - len(removed)


def _metadata(text_: str) -> dict[str, Any]:
    try:
        found = orjson.loads(text_)
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _step(metadata: str) -> int | None:
    step = _metadata(metadata).get("step")
    return step if type(step) is int else None


def _delta_floor(metadata: str) -> float | None:
    """The lowest step a checkpoint with this metadata needs (``None``: no need)."""
    found = _metadata(metadata)
    counters_ = found.get("counters_since_delta_snapshot")
    if not isinstance(counters_, dict) or not counters_:
        return None
    step = found.get("step")
    if type(step) is not int:
        return float("-inf")  # cannot tell: keep everything
    most = 0
    for value in counters_.values():
        # (updates, supersteps): a list, or the saver's tagged tuple.
        items = value.get("items") if isinstance(value, dict) else value
        if not isinstance(items, list) or len(items) != 2 or type(items[1]) is not int:
            return float("-inf")
        most = max(most, items[1])
    return step - most - 1


def _put_full(
    conn: Any, where: Target, checkpoint_id: str, data: str, metadata: str, now: datetime
) -> int | None:
    """A put that reads the session's state first: its new seq, or ``None`` if rewritten."""
    sid = where.session_id
    base_seq, _, top, stored = _state(conn, where, checkpoint_id, now)
    if stored is not None:
        conn.execute(_REWRITE, {"sid": sid, "row_seq": stored, "data": data, "meta": metadata})
        return None
    # The counter's rule (core.counters.next_seq): one above the base and every seq
    # held; everything above the base is a create since it.
    seq = max(base_seq, top or 0) + 1
    if _is_postgres(conn):
        repo.insert_checkpoint(conn, sid, seq, checkpoint_id, now, data, metadata)
    else:
        values = {"sid": sid, "seq": seq, "name": checkpoint_id, "data": data}
        conn.execute(_INSERT, {**values, "metadata": metadata, "created_at": now})
    return seq


def put_writes(
    conn: Any,
    where: Target,
    checkpoint_id: str,
    rows: Sequence[tuple[str, int, str, str, str]],
    now: datetime,
) -> None:
    """Store pending writes ``(task_id, idx, channel, value_json, task_path)``.

    LangGraph's rule (``WRITES_IDX_MAP``): when every write is to a special channel
    (negative ``idx``) they replace what is stored under the same key; otherwise a
    write already stored under its key stays as it is (a retried task repeats them).
    A ``hot`` operation of ``store.run``, as :func:`put`. On SQLite each insert is
    guarded by the thread's mapping, so the common case needs no read first.
    """
    if not rows:
        return
    replace = all(idx < 0 for _, idx, _, _, _ in rows)
    dialect = conn.dialect.name
    params = [
        {
            "sid": where.session_id,
            "cid": checkpoint_id,
            "task_id": task_id,
            "idx": idx,
            "channel": channel,
            "value": value,
            "task_path": task_path,
        }
        for task_id, idx, channel, value, task_path in rows
    ]
    if dialect == "sqlite":
        guarded = _write_statement(dialect, replace, guarded=True)
        mapping = {"tid": where.thread_id, "ns": where.checkpoint_ns}
        # Fewer rows than writes: no such thread here yet (or not this one), or a
        # write already stored under its key; the full path below tells them apart
        # (and repeats the inserts, which changes nothing where they were done).
        many = [{**one, **mapping} for one in params]
        if conn.execute(guarded, many).rowcount == len(many):
            return
    _state(conn, where, checkpoint_id, now)
    conn.execute(_write_statement(dialect, replace), params)


# -- PostgreSQL: a put or put_writes in one round trip ---------------------------------

#: The session's row lock, which orders a session's writers (see core.counters); the
#: statements after it in the same transaction see what the previous holder committed.
#: NO KEY UPDATE: it conflicts with every other writer's lock (FOR UPDATE, an UPDATE of
#: the row) but not with the foreign-key checks of a concurrent put_writes.
_PG_LOCK = text("SELECT base_seq FROM sessions WHERE session_id = :sid FOR NO KEY UPDATE")
#: :data:`_PUT_NEXT` for PostgreSQL, after :data:`_PG_LOCK`, and only if that lock was
#: taken: the row's ``xmax`` is this transaction's id while it holds the lock alone. On a
#: thread's first puts the lock statement found no row (the first put's, uncommitted),
#: and the insert, reading the top seq after that commit without the lock, took the seq
#: a locked writer took too (a duplicate key, or a deadlock with it). Unlocked (or the
#: lock shared with a foreign-key check, xmax a multixact), nothing is inserted here and
#: the full put (which locks first) runs.
_PG_PUT_NEXT = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT :sid, greatest(s.base_seq, coalesce((SELECT max(c.seq) FROM checkpoints c "
    "WHERE c.session_id = :sid), 0)) + 1, :name, :created_at, CAST(:data AS JSON), "
    "CAST(:metadata AS JSON) "
    "FROM sessions s JOIN langgraph_threads t ON t.session_id = s.session_id "
    "WHERE s.session_id = :sid AND t.thread_id = :tid AND t.checkpoint_ns = :ns "
    "AND s.xmax = pg_current_xact_id()::xid "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.session_id = :sid AND c.name = :name) "
    "RETURNING seq"
)


def _all_returned(results: list[list[Any]], first: int = 0) -> bool:
    return all(len(rows) == 1 for rows in results[first:])


def put_attempt(
    where: Target,
    checkpoint_id: str,
    data: str,
    metadata: str,
    now: datetime,
    keep_last: int | None,
) -> Attempt | None:
    """:func:`put` as one round trip for PostgreSQL's hot path (``store.run(attempt=)``).

    The session's row lock, then :data:`_PG_PUT_NEXT`: a known thread's new checkpoint.
    Anything else (a new thread, a rewrite, a conflict: no row returned, nothing
    written) is left to :func:`put`, as is a put with ``keep_last``.
    """
    if keep_last is not None:
        return None
    params = {"sid": where.session_id, "tid": where.thread_id, "ns": where.checkpoint_ns}
    params.update(name=checkpoint_id, data=data, metadata=metadata, created_at=now)
    statements = [(_PG_LOCK, {"sid": where.session_id}), (_PG_PUT_NEXT, params)]
    return statements, functools.partial(_all_returned, first=1)


def put_writes_attempt(
    where: Target, checkpoint_id: str, rows: Sequence[tuple[str, int, str, str, str]]
) -> Attempt | None:
    """:func:`put_writes` as one round trip for PostgreSQL's hot path.

    Each write's insert guarded by the thread's mapping, ``RETURNING`` a row when it
    wrote: all of them, or :func:`put_writes` runs (and repeats the ones done, which
    changes nothing: a kept first write stays, a replaced one is replaced the same).
    """
    if not rows:
        return None
    replace = all(idx < 0 for _, idx, _, _, _ in rows)
    base = {
        "sid": where.session_id,
        "cid": checkpoint_id,
        "tid": where.thread_id,
        "ns": where.checkpoint_ns,
    }
    if not replace:
        # The usual case (a task's channel writes): one statement, its own transaction.
        params = dict(base)
        for n, (t, i, c, v, p) in enumerate(rows):
            params.update({f"t{n}": t, f"i{n}": i, f"c{n}": c, f"v{n}": v, f"p{n}": p})
        return [(_pg_keep_first(len(rows)), params)], functools.partial(
            _returned, expected=len(rows)
        )
    # Special channels replace: one statement each (a DO UPDATE statement may not
    # touch a row twice, and two writes of one call may share a key).
    statement = _write_statement("postgresql", True, guarded=True, returning=True)
    statements = [
        (statement, {**base, "task_id": t, "idx": i, "channel": c, "value": v, "task_path": p})
        for t, i, c, v, p in rows
    ]
    return statements, _all_returned


def _returned(results: list[list[Any]], expected: int) -> bool:
    return len(results[0]) == expected


@functools.cache
def _pg_keep_first(n: int) -> Any:
    """``n`` pending writes that keep what is stored under their keys, in one statement."""
    values = ", ".join(
        f"(:t{k}, CAST(:i{k} AS INTEGER), :c{k}, CAST(:v{k} AS JSON), :p{k})" for k in range(n)
    )
    return text(
        "INSERT INTO langgraph_writes "
        "(session_id, checkpoint_id, task_id, idx, channel, value, task_path) "
        "SELECT :sid, :cid, v.task_id, v.idx, v.channel, v.value, v.task_path "
        f"FROM (VALUES {values}) AS v (task_id, idx, channel, value, task_path) "
        "WHERE EXISTS (SELECT 1 FROM langgraph_threads t WHERE t.session_id = :sid "
        "AND t.thread_id = :tid AND t.checkpoint_ns = :ns) "
        "ON CONFLICT (session_id, checkpoint_id, task_id, idx) DO NOTHING RETURNING idx"
    )


def _delete_writes(conn: Connection, session_id: str, names: Sequence[str]) -> None:
    if names:
        conn.execute(_DELETE_WRITES, {"sid": session_id, "names": list(names)})


def delete_thread(conn: Connection, thread_id: str) -> None:
    """Forget every namespace of a thread: sessions, checkpoints and writes (cascade)."""
    conn.execute(_DELETE_THREAD, {"tid": thread_id})


def delete_for_runs(conn: Connection, run_ids: Sequence[str], now: datetime) -> None:
    """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids``, and their writes."""
    if not run_ids:
        return
    by_session: dict[str, list[int]] = defaultdict(list)
    for sid, seq in conn.execute(_runs_statement(conn.dialect.name), {"runs": list(run_ids)}):
        by_session[sid].append(int(seq))
    for sid, seqs in by_session.items():
        counters.fold(conn, sid, now)  # before any delete (see core.counters)
        removed = conn.execute(_DELETE_SEQS, {"sid": sid, "seqs": seqs}).scalars().all()
        counters.adjust(conn, sid, -len(removed))
        _delete_writes(conn, sid, removed)


def prune(conn: Connection, thread_ids: Sequence[str], strategy: str, now: datetime) -> None:
    """``keep_latest``: each namespace of each thread keeps its newest; ``delete``: all go."""
    for thread_id in thread_ids:
        if strategy == "delete":
            delete_thread(conn, thread_id)
            continue
        dropped: set[str] = set()
        # The root namespace first (it sorts first): the subgraph calls that started
        # from its removed checkpoints go with them, as in LangGraph's PostgresSaver.
        for sid, ns in conn.execute(_THREAD_SESSIONS, {"tid": thread_id}).all():
            if sid in dropped:
                continue
            counters.fold(conn, sid, now)
            removed, _ = _trim(conn, sid, 1, delta=_recent_rows_use_delta(conn, sid))
            counters.adjust(conn, sid, -len(removed))
            _delete_writes(conn, sid, removed)
            _orphan_kept(conn, sid, set(removed))
            if ns == "" and removed:
                dropped.update(_drop_calls(conn, thread_id, set(removed)))


#: A thread's subgraph calls that started from one of the root checkpoints ``:gone``:
#: a call's namespace holds its task id after a ``:`` (a ``checkpointer=True``
#: subgraph's does not: its state outlives each call), and its newest checkpoint's
#: metadata names the root checkpoint in ``parents[""]``. One statement, whatever the
#: number of calls kept (a query per call cost a trimming put 3x with 268 of them).
_CALLS_FROM_SQL = (
    "SELECT t.session_id FROM langgraph_threads t "
    "WHERE t.thread_id = :tid AND t.checkpoint_ns LIKE '%:%' AND ("
    "SELECT {root} FROM checkpoints c WHERE c.session_id = t.session_id "
    "ORDER BY c.name DESC, c.seq DESC LIMIT 1) {among}"
)
_CALLS_FROM = {
    # A hot operation binds no lists on SQLite: the ids go as one JSON array.
    "sqlite": text(
        _CALLS_FROM_SQL.format(
            root="json_extract(c.metadata, '$.parents.\"\"')",
            among="IN (SELECT value FROM json_each(:gone))",
        )
    ),
    "postgresql": text(
        _CALLS_FROM_SQL.format(
            root="c.metadata -> 'parents' ->> ''", among="= ANY(CAST(:gone AS TEXT[]))"
        )
    ),
}
_DELETE_SESSION = text("DELETE FROM sessions WHERE session_id = :sid")


def _drop_calls(conn: Any, thread_id: str, gone: set[str]) -> list[str]:
    """Delete the subgraph calls that started from root checkpoints ``gone``.

    Kept per namespace, every past run's calls stayed for good (``keep_last=2`` held
    42 checkpoints in 21 namespaces after ten runs). Returns the sessions deleted
    (with their checkpoints and writes, by cascade, as :func:`delete_thread`).
    """
    postgres = _is_postgres(conn)
    ids = sorted(gone)
    params = {"tid": thread_id, "gone": ids if postgres else orjson.dumps(ids).decode()}
    dropped = [row[0] for row in conn.execute(_CALLS_FROM[conn.dialect.name], params)]
    for sid in dropped:
        conn.execute(_DELETE_SESSION, {"sid": sid})  # its rows and writes by cascade
    return dropped


_KEPT_DATA = select(_c.seq, _c.data).where(_c.session_id == bindparam("sid"))
_SET_DATA = (
    update(checkpoints)
    .where(_c.session_id == bindparam("sid"), _c.seq == bindparam("row_seq"))
    .values(data=bindparam("data"))
)


def _orphan_kept(conn: Any, sid: str, removed: set[str]) -> None:
    """After a prune: a kept checkpoint whose parent was removed has no parent.

    As LangGraph's PostgresSaver leaves it: its ``parent_config`` no longer names a
    checkpoint that is gone (a ``get_state`` of that read as an empty state).
    """
    if not removed:
        return
    for seq, data in conn.execute(_KEPT_DATA, {"sid": sid}).fetchall():
        doc = orjson.loads(data)
        if doc.get(PARENT_KEY) in removed:
            doc[PARENT_KEY] = None
            conn.execute(
                _SET_DATA, {"sid": sid, "row_seq": seq, "data": orjson.dumps(doc).decode()}
            )


def copy_thread(conn: Connection, source: str, dest: str, now: datetime) -> None:
    """Copy every namespace of thread ``source`` to thread ``dest`` (ids and writes kept).

    Each namespace's session is copied with :func:`breakpilot_store.core.copying.copy_history`
    (the store's ``copy_session``), so every copy records its origin.
    """
    for sid, ns in conn.execute(_THREAD_SESSIONS, {"tid": source}).all():
        to = target(dest, ns)
        check_new_thread(to)
        copying.copy_history(conn, sid, to.session_id, now)
        conn.execute(_ADD_THREAD, {"sid": to.session_id, "tid": dest, "ns": ns})


# -- reading ---------------------------------------------------------------------------


#: A stored checkpoint: ``(session_id, seq, name, data, metadata)`` as text.
Row = tuple[str, int, str, str, str]
#: Its pending writes: ``(task_id, channel, value)`` in LangGraph's order.
Writes = list[tuple[str, str, str]]


def _writes_of(conn: Connection, session_id: str, names: list[str]) -> dict[str, Writes]:
    found: dict[str, Writes] = {name: [] for name in names}
    if names:
        for cid, task_id, channel, value in conn.execute(
            _WRITES, {"sid": session_id, "names": names}
        ):
            found[cid].append((task_id, channel, value))
    return found


def get_tuple(conn: Any, where: Target, checkpoint_id: str | None) -> tuple[Row, Writes] | None:
    """Return a checkpoint of the thread's namespace (the newest if no id) and its writes.

    A ``hot`` read of ``store.run``: on SQLite one statement (see ``_ONE_WITH_WRITES``).
    """
    params = {"sid": where.session_id, "tid": where.thread_id, "ns": where.checkpoint_ns}
    if conn.dialect.name == "sqlite":
        if checkpoint_id is None:
            found = conn.execute(_NEWEST_WITH_WRITES, params).fetchone()
        else:
            found = conn.execute(_ONE_WITH_WRITES, {**params, "name": checkpoint_id}).fetchone()
        if found is None:
            return None
        gathered = sorted(orjson.loads(found[5]))  # by task_path, task_id, idx
        writes = [(task_id, channel, value) for _, task_id, _, channel, value in gathered]
        return tuple(found[:5]), writes  # type: ignore[return-value]
    if checkpoint_id is None:
        row = conn.execute(_NEWEST, params).first()
    else:
        row = conn.execute(_ONE, {**params, "name": checkpoint_id}).first()
    if row is None:
        return None
    return tuple(row), _writes_of(conn, where.session_id, [row[2]])[row[2]]  # type: ignore[return-value]


def list_checkpoints(
    conn: Connection,
    *,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    limit: int | None,
    keep: Callable[[str], bool] | None,
) -> list[tuple[str, str, Row, Writes]]:
    """Checkpoints newest first, as ``(thread_id, checkpoint_ns, row, writes)``.

    Args:
        conn: The transaction's connection.
        thread_id: Only this thread (``None``: every LangGraph thread).
        checkpoint_ns: Only this namespace (``None``: every namespace).
        checkpoint_id: Only the checkpoint with this id.
        before: Only checkpoints with a smaller id.
        limit: At most this many (after ``keep``).
        keep: Called with each row's metadata text; ``False`` drops the row (filters).
    """
    if limit is not None and limit <= 0:
        return []  # as InMemorySaver (SqliteSaver reads a negative one as "all")
    query = select(_t.thread_id, _t.checkpoint_ns, *_ROW).join(
        langgraph_threads, _t.session_id == _c.session_id
    )
    if thread_id is not None:
        query = query.where(_t.thread_id == thread_id)
    if checkpoint_ns is not None:
        query = query.where(_t.checkpoint_ns == checkpoint_ns)
    if thread_id is not None and checkpoint_ns is not None:
        # One session: the index on (session_id, name, seq) gives the order.
        query = query.where(_c.session_id == session_id_for(thread_id, checkpoint_ns))
    if checkpoint_id is not None:
        query = query.where(_c.name == checkpoint_id)
    if before is not None:
        query = query.where(_c.name < before)
    query = query.order_by(_c.name.desc(), _c.session_id, _c.seq.desc())
    if limit is not None and keep is None:
        query = query.limit(limit)
    found: list[tuple[str, str, Row]] = []
    for row in conn.execute(query):
        if keep is not None and not keep(row[6]):
            continue
        found.append((row[0], row[1], tuple(row[2:])))  # type: ignore[arg-type]
        if limit is not None and len(found) >= limit:
            break
    names: dict[str, list[str]] = defaultdict(list)
    for _, _, row in found:
        names[row[0]].append(row[2])
    writes = {sid: _writes_of(conn, sid, cids) for sid, cids in names.items()}
    return [(tid, ns, row, writes[row[0]][row[2]]) for tid, ns, row in found]
