"""The ADK session service's operations, each a function of a ``Connection``.

Written once, run by :meth:`AsyncCheckpointStore.run` (one transaction, or one
savepoint under group commit); none commits, and none catches a database error (a
failed statement inside a savepoint must reach the savepoint). They know nothing of
ADK's classes: they take and return plain values and encoded JSON text, and raise the
integration's typed errors. Events are the ``checkpoints`` rows of the store session
:func:`store_key` names (see :mod:`breakpilot_store.core.item_log`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from ..codec import decode, encode_object
from ..core import counters, item_log
from ..core import repository as repo
from ..naming import ADK_PREFIX
from ..schema import UTCDateTime, adk_app_states, adk_sessions, adk_user_states
from .errors import AdkSessionExistsError, AdkSessionNotFoundError, AdkStaleSessionError

_s = adk_sessions.c
_a = adk_app_states.c
_u = adk_user_states.c

#: The prefix of the store sessions that hold ADK events.
SESSION_PREFIX = ADK_PREFIX

STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)


def _quote(part: str) -> str:
    # ":" separates the parts; "%" escapes itself, so the key is unambiguous.
    return part.replace("%", "%25").replace(":", "%3A")


def store_key(app_name: str, user_id: str, session_id: str) -> str:
    """The store session of an ADK session: ``adk:<app>:<user>:<session>``.

    A ``%`` or ``:`` inside a part is written ``%25`` or ``%3A``.
    """
    return f"{SESSION_PREFIX}{_quote(app_name)}:{_quote(user_id)}:{_quote(session_id)}"


@dataclass(frozen=True)
class StoredSession:
    """One ADK session as stored (state scopes apart, events as checkpoints)."""

    app_name: str
    user_id: str
    session_id: str
    state: dict[str, Any]
    app_state: dict[str, Any]
    user_state: dict[str, Any]
    update_time: datetime
    marker: str
    #: The events as stored (JSON objects), oldest first.
    events: list[dict[str, Any]]


def _marker(create_time: datetime, revision: int) -> str:
    """The revision marker a loaded session carries (exact; a new incarnation differs)."""
    return f"{revision}@{create_time.isoformat(timespec='microseconds')}"


_ADD_APP = text(
    "INSERT INTO adk_app_states (app_name, state, update_time) VALUES (:app, '{}', :now) "
    "ON CONFLICT (app_name) DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))
_ADD_USER = text(
    "INSERT INTO adk_user_states (app_name, user_id, state, update_time) "
    "VALUES (:app, :user, '{}', :now) ON CONFLICT (app_name, user_id) DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _merge_scope(
    conn: Connection, table: Any, keys: dict[str, str], delta: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Apply ``delta`` to a shared (app or user) state row, creating it; return the state.

    The row is created first if missing (``ON CONFLICT DO NOTHING``: two sessions of a
    new app may start at once), then read under a row lock (PostgreSQL), so
    concurrent deltas to the same scope are applied one after the other.
    """
    params = {"app": keys["app_name"], "now": now}
    if table is adk_user_states:
        params["user"] = keys["user_id"]
    conn.execute(_ADD_APP if table is adk_app_states else _ADD_USER, params)
    where = [table.c[name] == value for name, value in keys.items()]
    stmt = select(table.c.state).where(*where)
    if delta and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    state = decode(conn.execute(stmt).scalar_one())
    if delta:
        state.update(delta)
        conn.execute(
            update(table).where(*where).values(state=encode_object(state, "state"), update_time=now)
        )
    return state


def _read_scope(conn: Connection, table: Any, **keys: str) -> dict[str, Any]:
    where = [table.c[name] == value for name, value in keys.items()]
    found = conn.execute(select(table.c.state).where(*where)).scalar()
    return {} if found is None else decode(found)


_HOLDS_ROWS = text("SELECT 1 FROM checkpoints WHERE session_id = :sid LIMIT 1")


def create(
    conn: Connection,
    app_name: str,
    user_id: str,
    session_id: str,
    deltas: dict[str, dict[str, Any]],
    now: datetime,
) -> StoredSession:
    """Create an ADK session with its initial state (scoped ``deltas``: app/user/session).

    Raises:
        AdkSessionExistsError: The session exists, or its store session holds rows.
    """
    keys = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    if conn.execute(select(_s.revision).where(*_where(keys))).first() is not None:
        raise AdkSessionExistsError(f"Session with id {session_id} already exists.")
    key = store_key(app_name, user_id, session_id)
    if conn.execute(_HOLDS_ROWS, {"sid": key}).first() is not None:
        # Rows no ADK session owns (a fork, copy or import into this store session):
        # the new session would read them as its own events.
        raise AdkSessionExistsError(
            f"Session with id {session_id} cannot be created: its store session {key!r} "
            "already holds checkpoints of no ADK session (a fork, copy or import?); "
            "delete that store session first, or use another session id."
        )
    app_state = _merge_scope(conn, adk_app_states, {"app_name": app_name}, deltas["app"], now)
    user_state = _merge_scope(
        conn, adk_user_states, {"app_name": app_name, "user_id": user_id}, deltas["user"], now
    )
    counters.add_session(conn, key, now)
    values = {
        **keys,
        "store_session_id": key,
        "state": encode_object(deltas["session"], "state"),
        "create_time": now,
        "update_time": now,
        "revision": 0,
    }
    if conn.dialect.name == "postgresql":
        # Another create of the same id may be running (the check above cannot see
        # it before it commits): its row is waited for and then refused here, typed,
        # not as the primary key's violation. SQLite's write lock serializes creates.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(adk_sessions).values(values).on_conflict_do_nothing()
        if conn.execute(stmt.returning(_s.revision)).first() is None:
            raise AdkSessionExistsError(f"Session with id {session_id} already exists.")
    else:
        conn.execute(insert(adk_sessions).values(values))
    return StoredSession(
        app_name,
        user_id,
        session_id,
        dict(deltas["session"]),
        app_state,
        user_state,
        now,
        _marker(now, 0),
        [],
    )


def _where(keys: dict[str, str]) -> list[Any]:
    return [
        _s.app_name == keys["app_name"],
        _s.user_id == keys["user_id"],
        _s.session_id == keys["session_id"],
    ]


_SESSION_COLUMNS = (
    _s.app_name,
    _s.user_id,
    _s.session_id,
    _s.store_session_id,
    _s.state,
    _s.create_time,
    _s.update_time,
    _s.revision,
)


def get(
    conn: Connection,
    app_name: str,
    user_id: str,
    session_id: str,
    *,
    num_recent_events: int | None = None,
    after: datetime | None = None,
) -> StoredSession | None:
    """Read an ADK session with its events (newest ``num_recent_events``, from ``after``)."""
    keys = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    row = conn.execute(select(*_SESSION_COLUMNS).where(*_where(keys))).first()
    if row is None:
        return None
    events = item_log.read(conn, row.store_session_id, limit=num_recent_events, start=after)
    return StoredSession(
        app_name,
        user_id,
        session_id,
        decode(row.state),
        _read_scope(conn, adk_app_states, app_name=app_name),
        _read_scope(conn, adk_user_states, app_name=app_name, user_id=user_id),
        row.update_time,
        _marker(row.create_time, row.revision),
        events,
    )


def list_(conn: Connection, app_name: str, user_id: str | None) -> list[StoredSession]:
    """The sessions of an app (of one user, if given), least recently updated first."""
    stmt = select(*_SESSION_COLUMNS).where(_s.app_name == app_name)
    users = select(_u.user_id, _u.state).where(_u.app_name == app_name)
    if user_id is not None:
        stmt = stmt.where(_s.user_id == user_id)
        users = users.where(_u.user_id == user_id)
    stmt = stmt.order_by(_s.update_time, _s.user_id, _s.session_id)
    app_state = _read_scope(conn, adk_app_states, app_name=app_name)
    user_states = {user: state for user, state in conn.execute(users)}
    return [
        StoredSession(
            row.app_name,
            row.user_id,
            row.session_id,
            decode(row.state),
            dict(app_state),
            decode(user_states[row.user_id]) if row.user_id in user_states else {},
            row.update_time,
            _marker(row.create_time, row.revision),
            [],
        )
        for row in conn.execute(stmt)
    ]


def delete_(conn: Connection, app_name: str, user_id: str, session_id: str) -> bool:
    """Delete an ADK session and its events; ``False`` if there was none."""
    keys = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    stmt = select(_s.store_session_id).where(*_where(keys))
    if conn.dialect.name == "postgresql":
        # The ADK row first, then the store session's, as append() locks them: the
        # cascade from the store session to a row an append held deadlocked.
        stmt = stmt.with_for_update()
    key = conn.execute(stmt).scalar()
    if key is None:
        return False
    # The store session (events, counter) goes, and with it, by cascade, the ADK row;
    # deleted explicitly too, so nothing is left on a connection with foreign keys off.
    repo.delete_session(conn, key)
    conn.execute(delete(adk_sessions).where(*_where(keys)))
    return True


@dataclass(frozen=True)
class Append:
    """One event to append, as the service prepared it (temp state already trimmed)."""

    app_name: str
    user_id: str
    session_id: str
    #: The loaded session's marker, or ``None`` for a session object not loaded here.
    marker: str | None
    #: For a marker-less session object: its ``last_update_time`` and newest event id.
    last_update_time: datetime
    last_event_id: str | None
    author: str
    timestamp: datetime
    event: str
    deltas: dict[str, dict[str, Any]]


def append(conn: Connection, a: Append, now: datetime) -> tuple[datetime, str]:
    """Append an event, apply its state delta, bump the revision; return the new marker.

    Raises:
        AdkSessionNotFoundError: No such session (wrong app name, user id or id).
        AdkStaleSessionError: The session object is older than the stored session.
    """
    keys = {"app_name": a.app_name, "user_id": a.user_id, "session_id": a.session_id}
    stmt = select(*_SESSION_COLUMNS).where(*_where(keys))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()  # SQLite: BEGIN IMMEDIATE holds the write lock
    row = conn.execute(stmt).first()
    if row is None:
        raise AdkSessionNotFoundError(f"Session {a.session_id} not found.")
    if a.marker is not None:
        if a.marker != _marker(row.create_time, row.revision):
            raise AdkStaleSessionError(STALE_MESSAGE)
    elif row.update_time > a.last_update_time:
        # A session object not loaded from this store (ADK's fallback): stale only if
        # the store holds an event it does not.
        newest = repo.fetch_latest(conn, row.store_session_id)
        newest_id = None if newest is None else newest.data.get("id")
        if newest_id != a.last_event_id:
            raise AdkStaleSessionError(STALE_MESSAGE)
    if a.deltas["app"]:
        _merge_scope(conn, adk_app_states, {"app_name": a.app_name}, a.deltas["app"], now)
    if a.deltas["user"]:
        _merge_scope(
            conn,
            adk_user_states,
            {"app_name": a.app_name, "user_id": a.user_id},
            a.deltas["user"],
            now,
        )
    values: dict[str, Any] = {"update_time": a.timestamp, "revision": row.revision + 1}
    if a.deltas["session"]:
        state = decode(row.state)
        state.update(a.deltas["session"])
        values["state"] = encode_object(state, "state")
    item_log.append(conn, row.store_session_id, [(a.author, a.timestamp, a.event)], now)
    conn.execute(update(adk_sessions).where(*_where(keys)).values(**values))
    return a.timestamp, _marker(row.create_time, row.revision + 1)


def user_state(conn: Connection, app_name: str, user_id: str) -> dict[str, Any]:
    """The ``user:`` state of one user of an app (keys without the prefix)."""
    return _read_scope(conn, adk_user_states, app_name=app_name, user_id=user_id)


__all__: Sequence[str] = [
    "Append",
    "StoredSession",
    "append",
    "create",
    "delete_",
    "get",
    "list_",
    "store_key",
    "user_state",
]
