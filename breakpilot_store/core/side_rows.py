"""The rows the framework integrations keep beside a session's checkpoints.

A LangGraph thread's session has its ``langgraph_threads`` row and its pending writes
(``langgraph_writes``); an ADK session's store session has its ``adk_sessions`` row, and
that session's app and user share ``adk_app_states`` and ``adk_user_states``. Export and
import carry only checkpoints, so a copy of a store (the CLI's ``copy``) reads these
here from the source and writes them into the target: :func:`read` in the source's
transaction, :func:`write` in the target's, each never committing. A row the target
already has under the same key is replaced by the source's (copying is moving a fleet:
the source is the truth).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, and_, or_, select, tuple_

from ..schema import (
    adk_app_states,
    adk_sessions,
    adk_user_states,
    langgraph_threads,
    langgraph_writes,
)

#: ``table name -> rows`` (each row a dict of its columns), for one session.
SideRows = dict[str, list[dict[str, Any]]]

_TABLES: tuple[Table, ...] = (
    langgraph_threads,
    langgraph_writes,
    adk_sessions,
    adk_app_states,
    adk_user_states,
)


#: The tables whose rows belong to one session, and the column naming it.
_PER_SESSION = (
    (langgraph_threads, langgraph_threads.c.session_id),
    (langgraph_writes, langgraph_writes.c.session_id),
    (adk_sessions, adk_sessions.c.store_session_id),
)


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def read(conn: Connection, session_id: str) -> SideRows:
    """The integration rows of ``session_id`` (and of its ADK session's app and user)."""
    adk = _rows(conn, select(adk_sessions).where(adk_sessions.c.store_session_id == session_id))
    apps = {row["app_name"] for row in adk}
    users = {(row["app_name"], row["user_id"]) for row in adk}
    u = adk_user_states.c
    return {
        "langgraph_threads": _rows(
            conn, select(langgraph_threads).where(langgraph_threads.c.session_id == session_id)
        ),
        "langgraph_writes": _rows(
            conn, select(langgraph_writes).where(langgraph_writes.c.session_id == session_id)
        ),
        "adk_sessions": adk,
        "adk_app_states": _rows(
            conn, select(adk_app_states).where(adk_app_states.c.app_name.in_(sorted(apps)))
        )
        if apps
        else [],
        "adk_user_states": _rows(
            conn,
            select(adk_user_states).where(
                or_(*(and_(u.app_name == app, u.user_id == user) for app, user in sorted(users)))
            ),
        )
        if users
        else [],
    }


def write(conn: Connection, session_id: str, rows: SideRows) -> None:
    """Make ``session_id``'s integration rows ``rows`` (as :func:`read` returned them).

    The session's own rows are replaced whole; the app and user states it names are
    replaced row by row (other apps' and users' stay). Plain deletes and inserts, in the
    caller's one transaction: nothing is ever seen half replaced, on either backend.
    """
    for table, column in _PER_SESSION:
        conn.execute(table.delete().where(column == session_id))
    for table in (adk_app_states, adk_user_states):
        key = list(table.primary_key.columns)
        found = rows.get(table.name, [])
        if found:
            keys = [tuple(row[c.name] for c in key) for row in found]
            conn.execute(table.delete().where(tuple_(*key).in_(keys)))
    for table in _TABLES:
        if rows.get(table.name):
            conn.execute(table.insert(), rows[table.name])


def differences(expected: SideRows, held: SideRows) -> list[str]:
    """What of ``expected`` (read from a source) ``held`` (read from a target) lacks."""
    missing = []
    for table in _TABLES:
        have = {_frozen(row) for row in held.get(table.name, [])}
        lacking = [row for row in expected.get(table.name, []) if _frozen(row) not in have]
        if lacking:
            missing.append(f"{len(lacking)} of {table.name}")
    return missing


def _frozen(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(row.items()))
