"""Copy a session, or its history up to one checkpoint, into a new session.

Statements over a connection the caller passes in (never commits). A copy keeps each
checkpoint's seq, name, time, data and metadata; its ``origin_id`` is the id it was
copied from, or the origin it already had (a copy of a copy, or of an import, still
names the first source). The new session's counter continues from the source's, so the
ids that the copy hands out next never collide with the copied ones. A LangGraph
thread's pending writes of the copied checkpoints go along (a fork leaves those of its
last checkpoint behind), and a copy of a thread's
root namespace is a LangGraph thread of the new id (see ``breakpilot_store.langgraph``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, text

from ..checkpoint import split_id
from ..codec import check_key
from ..errors import CheckpointValueError, UnknownSessionError
from ..naming import root_thread_of, thread_session_id
from ..schema import checkpoints, langgraph_threads
from . import counters, leases

_c = checkpoints.c
_HAS_SEQ = select(_c.seq).where(_c.session_id == bindparam("sid"), _c.seq == bindparam("seq"))
_COPY_ROWS = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata, origin_id) "
    "SELECT :dst, seq, name, created_at, data, metadata, "
    "coalesce(origin_id, session_id || ':' || CAST(seq AS TEXT)) "
    "FROM checkpoints WHERE session_id = :src AND seq <= :upto"
)
_COPY_WRITES = text(
    "INSERT INTO langgraph_writes "
    "(session_id, checkpoint_id, task_id, idx, channel, value, task_path) "
    "SELECT :dst, w.checkpoint_id, w.task_id, w.idx, w.channel, w.value, w.task_path "
    "FROM langgraph_writes w WHERE w.session_id = :src AND w.checkpoint_id IN "
    "(SELECT name FROM checkpoints WHERE session_id = :dst AND seq <= :upto)"
)
_ROOT_THREAD = select(langgraph_threads.c.checkpoint_ns).where(
    langgraph_threads.c.session_id == bindparam("sid")
)
_ADD_THREAD = text(
    "INSERT INTO langgraph_threads (session_id, thread_id, checkpoint_ns) VALUES (:sid, :tid, :ns)"
)


def copy_history(
    conn: Connection, src: str, dst: str, now: datetime, *, upto: int | None = None
) -> int:
    """Copy ``src``'s checkpoints (those at seq <= ``upto``, or all) into the new ``dst``.

    Returns:
        How many checkpoints were copied.

    Raises:
        UnknownSessionError: ``src`` does not exist.
        CheckpointValueError: ``dst`` already holds checkpoints, or is ``src``.
    """
    if src == dst:
        raise CheckpointValueError(f"cannot copy session {src!r} onto itself")
    # Locked (PostgreSQL) and read, not folded: a copy is no write to the source.
    state = counters.live(conn, src) if counters.lock(conn, src) else None
    if state is None:
        raise UnknownSessionError(f"no session {src!r}")
    last_seq = state[0]
    # A fork starts before the step after its checkpoint: that checkpoint's pending
    # writes (the results of that step's tasks) stay behind, so the tasks run again.
    writes_upto = last_seq if upto is None else upto - 1
    if upto is None:
        upto = last_seq
    if counters.lock(conn, dst):
        # Even an emptied session keeps its counter: its ids must never be handed out
        # again, and a copy would bring back seqs it has already used.
        raise CheckpointValueError(
            f"session {dst!r} already exists; copy or fork into a new session id"
        )
    # A session deleted with force=True keeps its lease row: its holder still writes
    # there, and a copy would lay other history under its next checkpoint.
    leases.check(conn, dst, None, now)
    counters.add_session(conn, dst, now)
    copied = conn.execute(_COPY_ROWS, {"dst": dst, "src": src, "upto": upto}).rowcount
    counters.rebase(conn, dst, max(upto, 0), copied, now)
    conn.execute(_COPY_WRITES, {"dst": dst, "src": src, "upto": writes_upto})
    return copied


def thread_of_copy(conn: Connection, src: str, dst: str) -> str | None:
    """The LangGraph thread a copy ``dst`` of ``src`` is: ``None`` unless ``src`` is one.

    Asked before anything is copied, so that a refusal writes nothing.

    Raises:
        CheckpointValueError: ``src`` is a thread's root namespace and ``dst`` cannot
            be one (it holds ``|``, a ``%`` that is no escape, or another integration's
            prefix; see :mod:`breakpilot_store.naming`).
    """
    if conn.execute(_ROOT_THREAD, {"sid": src}).scalar() != "":
        return None
    thread_id = root_thread_of(dst)
    if thread_id is None:
        hint = thread_session_id(dst, "")
        use = "" if root_thread_of(hint) is None else f"; for thread {dst!r} use {hint!r}"
        raise CheckpointValueError(
            f"session {src!r} is a LangGraph thread, and {dst!r} cannot name one (a '|' "
            "starts a namespace, '%' starts an escape, and sessions beginning 'adk:' or "
            f"'oai:' are the ADK and OpenAI integrations'){use}"
        )
    return thread_id


def register_thread(conn: Connection, dst: str, thread_id: str | None) -> None:
    """Record ``dst`` as the root namespace of ``thread_id`` (nothing for ``None``)."""
    if thread_id is not None:
        conn.execute(_ADD_THREAD, {"sid": dst, "tid": thread_id, "ns": ""})


def copy_session(conn: Connection, src: str, dst: str, now: datetime) -> int:
    """Copy every checkpoint of ``src`` into the new session ``dst``; return how many.

    See :meth:`breakpilot_store.CheckpointStore.copy_session`.
    """
    src = check_key(src, "source session_id")
    dst = check_key(dst, "new session_id")
    thread_id = thread_of_copy(conn, src, dst)
    copied = copy_history(conn, src, dst, now)
    register_thread(conn, dst, thread_id)
    return copied


def fork_session(conn: Connection, checkpoint_id: str, dst: str, now: datetime) -> int:
    """Copy a session's history up to and including ``checkpoint_id`` into ``dst``.

    See :meth:`breakpilot_store.CheckpointStore.fork_session`.
    """
    checkpoint_id = check_key(checkpoint_id, "checkpoint_id")
    dst = check_key(dst, "new session_id")
    parts = split_id(checkpoint_id)
    if parts is None:
        raise CheckpointValueError(
            f"{checkpoint_id!r} is not a checkpoint id ('session:seq', as the CLI lists them)"
        )
    src, seq = parts
    if conn.execute(_HAS_SEQ, {"sid": src, "seq": seq}).first() is None:
        raise UnknownSessionError(f"no checkpoint {checkpoint_id!r}")
    thread_id = thread_of_copy(conn, src, dst)
    copied = copy_history(conn, src, dst, now, upto=seq)
    register_thread(conn, dst, thread_id)
    return copied
