"""``BreakpilotSessionService``: ADK's ``BaseSessionService`` over the checkpoint store.

Behaviour follows ADK's ``DatabaseSessionService``: state deltas are split by scope
(``app:`` keys shared by every session of the app, ``user:`` keys by every session of
the user, ``temp:`` keys applied to the session object only and never stored), partial
events are not stored, and appending through a session object that another writer has
overtaken raises ``StaleSessionError``. Events are read back in the order they were
appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from google.adk.events.event import Event
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from sqlalchemy import Connection

from ..codec import check_key, encode_object
from ..core.bounds import check_text
from ..errors import CheckpointTypeError, CheckpointValueError
from ..integration import StoreArg, async_store
from . import operations as ops
from .operations import StoredSession


def _from_epoch(timestamp: float, what: str) -> datetime | None:
    """Seconds since the epoch as an aware UTC datetime; ``None`` beyond the years 1-9999.

    Raises:
        CheckpointTypeError: Not a number.
    """
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc)
    except TypeError as exc:
        raise CheckpointTypeError(
            f"{what} must be seconds since the epoch, not {type(timestamp).__name__}"
        ) from exc
    except (ValueError, OverflowError, OSError):  # NaN, infinite, or out of range
        return None


def _utc(timestamp: float, what: str = "timestamp") -> datetime:
    """An ADK timestamp as an aware UTC datetime.

    Raises:
        CheckpointValueError: NaN, infinite, or outside the years 1-9999.
        CheckpointTypeError: Not a number.
    """
    found = _from_epoch(timestamp, what)
    if found is None:
        raise CheckpointValueError(f"{what} {timestamp!r} is not a time in the years 1-9999")
    return found


#: The latest moment the store keeps: nothing is at or after a later one.
_LAST = datetime.max.replace(tzinfo=timezone.utc)


def _after(timestamp: float) -> datetime | None:
    """``GetSessionConfig.after_timestamp`` as a bound, as InMemorySessionService reads it.

    Before year 1 keeps every event, after 9999 none (never an error); NaN is refused.
    """
    if timestamp != timestamp:  # NaN
        raise CheckpointValueError("after_timestamp must be a number, not NaN")
    found = _from_epoch(timestamp, "after_timestamp")
    if found is None:
        return None if timestamp < 0 else _LAST
    return found


def _deltas(state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Split a state (delta) by scope, JSON-safe as ADK's database service makes it.

    Each scope is encoded once here, so a value the store cannot keep exactly (NaN,
    an integer beyond 64 bits, ...) is refused before anything is written.
    """
    if state is None:
        state = {}
    # ADK's helper assumes a dict of str keys: anything else raised AttributeError or
    # UnicodeEncodeError from inside it. Refused here, typed and naming the key.
    if type(state) is not dict:
        raise CheckpointTypeError(f"state must be a dict, not {type(state).__name__}")
    for key in state:
        if type(key) is not str:
            raise CheckpointTypeError(f"state key {key!r} must be a str")
        check_text(key, "state key")
    deltas = _session_util.extract_json_safe_state_delta(state)
    for scope, delta in deltas.items():
        encode_object(delta, f"state[{scope!r}]")
    return deltas


def _keys(app_name: Any, user_id: Any, session_id: Any = "-") -> None:
    check_key(app_name, "app_name")
    check_key(user_id, "user_id")
    check_key(session_id, "session_id")


def _to_session(stored: StoredSession, events: list[Event] | None = None) -> Session:
    state = dict(stored.state)
    for key, value in stored.app_state.items():
        state["app:" + key] = value
    for key, value in stored.user_state.items():
        state["user:" + key] = value
    session = Session(
        app_name=stored.app_name,
        user_id=stored.user_id,
        id=stored.session_id,
        state=state,
        events=events or [],
        last_update_time=stored.update_time.timestamp(),
    )
    session._storage_update_marker = stored.marker
    return session


class BreakpilotSessionService(BaseSessionService):
    """An ADK session service whose sessions live in a breakpilot_store database.

    Args:
        store: A path or URL, a :class:`~breakpilot_store.CheckpointStore`, an
            :class:`~breakpilot_store.AsyncCheckpointStore`, or ``None`` for the default
            store. What is opened here is closed by :meth:`close` (a
            ``CheckpointStore`` passed in stays open).

    Raises:
        CheckpointTypeError: ``store`` is of no accepted kind.
    """

    def __init__(self, store: StoreArg = None) -> None:
        self._store, self._owns_store = async_store(store)
        # As ADK's database service: appends to one session from this process run one
        # at a time, so a session object shared by tasks sees its own marker advance.
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str, str], int] = {}

    @contextlib.asynccontextmanager
    async def _session_lock(self, key: tuple[str, str, str]) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session; ``app:``/``user:`` keys of ``state`` go to the shared scopes.

        Raises:
            AdkSessionExistsError: ``session_id`` is taken (also an ADK
                ``AlreadyExistsError``).
            CheckpointTypeError, CheckpointValueError: A bad id, or a state value the
                store cannot keep exactly. Nothing is written.
        """
        if session_id is None or session_id == "":
            # As ADK's own services (``if not session_id``): an id is made.
            session_id = str(uuid.uuid4())
        _keys(app_name, user_id, session_id)
        deltas = _deltas(state)
        now = _utc(time.time())

        def op(conn: Connection) -> StoredSession:
            return ops.create(conn, app_name, user_id, session_id, deltas, now)

        return _to_session(await self._store.run(op, write=True))

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Return the session with its events, or ``None`` if there is no such session.

        ``config.num_recent_events`` keeps the newest events only (``0``: none);
        ``config.after_timestamp`` those at or after that time.
        """
        _keys(app_name, user_id, session_id)
        recent = config.num_recent_events if config else None
        # As ADK's database service: a zero timestamp filters nothing.
        after = _after(config.after_timestamp) if config and config.after_timestamp else None

        def op(conn: Connection) -> StoredSession | None:
            return ops.get(
                conn, app_name, user_id, session_id, num_recent_events=recent, after=after
            )

        stored = await self._store.run(op)
        if stored is None:
            return None
        return _to_session(stored, [Event.model_validate(data) for data in stored.events])

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """List an app's sessions (of one user, if given), without their events."""
        check_key(app_name, "app_name")
        if user_id is not None:
            check_key(user_id, "user_id")

        def op(conn: Connection) -> list[StoredSession]:
            return ops.list_(conn, app_name, user_id)

        return ListSessionsResponse(sessions=[_to_session(s) for s in await self._store.run(op)])

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events (nothing happens if there is none)."""
        _keys(app_name, user_id, session_id)

        def op(conn: Connection) -> bool:
            return ops.delete_(conn, app_name, user_id, session_id)

        await self._store.run(op, write=True)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's ``user:`` state in the app, keys without the prefix."""
        _keys(app_name, user_id)

        def op(conn: Connection) -> dict[str, Any]:
            return ops.user_state(conn, app_name, user_id)

        return await self._store.run(op)

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store ``event`` in ``session`` and apply its state delta (one transaction).

        Partial events are returned untouched and not stored; ``temp:`` state reaches
        the session object only.

        Raises:
            AdkSessionNotFoundError: No such session (also ADK's
                ``SessionNotFoundError``).
            AdkStaleSessionError: Another writer appended since ``session`` was loaded
                (also ADK's ``StaleSessionError``).
            CheckpointTypeError, CheckpointValueError: The event or its state delta
                holds a value the store cannot keep exactly. Nothing is written.
        """
        if event.partial:
            return event
        _keys(session.app_name, session.user_id, session.id)
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        deltas = _deltas(event.actions.state_delta if event.actions else None)
        data = encode_object(event.model_dump(exclude_none=True, mode="json"), "event")
        author = event.author if isinstance(event.author, str) and event.author else "event"
        key = (session.app_name, session.user_id, session.id)
        async with self._session_lock(key):
            request = ops.Append(
                *key,
                marker=session._storage_update_marker,
                last_update_time=_utc(session.last_update_time, "the session's last_update_time"),
                last_event_id=session.events[-1].id if session.events else None,
                author=author[:200],
                timestamp=_utc(event.timestamp, "the event's timestamp"),
                event=data,
                deltas=deltas,
            )
            now = _utc(time.time())

            def op(conn: Connection) -> tuple[datetime, str]:
                return ops.append(conn, request, now)

            update_time, marker = await self._store.run(op, write=True)
            session.last_update_time = update_time.timestamp()
            session._storage_update_marker = marker
        return self._commit_event_to_session(session, event)

    async def close(self) -> None:
        """Close the store if it was opened here (never one passed in)."""
        if self._owns_store:
            await self._store.close()

    async def __aenter__(self) -> BreakpilotSessionService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
