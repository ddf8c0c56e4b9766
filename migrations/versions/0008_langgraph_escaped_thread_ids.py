"""LangGraph sessions of thread ids holding ``|`` or ``%``: the thread id escaped.

A thread's root namespace was the session ``thread_id`` and a subgraph's the session
``thread_id|checkpoint_ns``, so thread ``a|b`` and thread ``a`` namespace ``b`` named
one session: the second to write got ``ThreadConflictError`` (and thread ``a|b``
namespace ``c`` met thread ``a`` namespace ``b|c``). The thread id part is now escaped,
as the ADK keys are: ``%`` is written ``%25`` and ``|`` is written ``%7C``
(``breakpilot_store.langgraph.operations.session_id_for``). A thread id holding neither
(nearly every one) names the same session as before.

Existing data: each session of such a thread is renamed. Its ``sessions`` row is copied
under the new id; its checkpoints, pending writes, thread row and lease move to it; the
old row goes. A session whose new id is already taken (by a session that is not this
thread) is left as it is, and the saver then refuses the thread with
``ThreadConflictError`` naming the session, as it did before. The downgrade renames
them back, where the old id is free.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables whose ``session_id`` follows a renamed session (``leases`` has no foreign
#: key, but a lease is the session's).
_CHILDREN = ("checkpoints", "langgraph_writes", "langgraph_threads", "leases")


def _escaped(thread_id: str) -> str:
    # Written out here, not imported: a migration keeps the rule of its own revision.
    return thread_id.replace("%", "%25").replace("|", "%7C")


def _session(thread: str, ns: str) -> str:
    return thread if not ns else f"{thread}|{ns}"


def _rename(pairs: list[tuple[str, str]]) -> None:
    """Move each session ``old`` to ``new`` where ``new`` is free.

    In passes until nothing more moves: a target held by another session of the list
    is free once that one has moved on (thread ``a|b`` goes to ``a%7Cb`` after thread
    ``a%7Cb`` has gone to ``a%257Cb``), whatever order the rows came in. Escaping makes
    an id longer, and unescaping shorter, so such chains end. A target still held at
    the end is held by a session that does not move: that one stays, as the module
    docstring says.
    """
    conn = op.get_bind()
    taken = sa.text("SELECT 1 FROM sessions WHERE session_id = :new")
    pending = [(old, new) for old, new in pairs if old != new]
    while pending:
        waiting = []
        for old, new in pending:
            if conn.execute(taken, {"new": new}).first() is not None:
                waiting.append((old, new))
                continue
            _move(conn, old, new)
        if len(waiting) == len(pending):
            break
        pending = waiting


def _move(conn: sa.Connection, old: str, new: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at, "
            "lease_token) SELECT :new, base_seq, base_count, created_at, base_at, "
            "lease_token FROM sessions WHERE session_id = :old"
        ),
        {"old": old, "new": new},
    )
    for table in _CHILDREN:
        conn.execute(
            sa.text(f"UPDATE {table} SET session_id = :new WHERE session_id = :old"),
            {"old": old, "new": new},
        )
    conn.execute(sa.text("DELETE FROM sessions WHERE session_id = :old"), {"old": old})


def _threads() -> list[tuple[str, str, str]]:
    """``(session_id, thread_id, checkpoint_ns)`` of the threads the rule touches."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT session_id, thread_id, checkpoint_ns FROM langgraph_threads "
            "WHERE thread_id LIKE '%|%' OR thread_id LIKE '%!%%' ESCAPE '!'"
        )
    )
    return [tuple(row) for row in rows]


def upgrade() -> None:
    _rename(
        [
            (session, _session(_escaped(thread), ns))
            for session, thread, ns in _threads()
            if session == _session(thread, ns)
        ]
    )


def downgrade() -> None:
    _rename(
        [
            (session, _session(thread, ns))
            for session, thread, ns in _threads()
            if session == _session(_escaped(thread), ns)
        ]
    )
