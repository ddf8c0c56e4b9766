"""``BreakpilotSession``: the SDK's ``Session`` protocol over the checkpoint store.

Each conversation item is one ``checkpoints`` row of the store session
``oai:<session_id>``: ``data`` is the item exactly as the SDK gave it (a JSON object),
``name`` its ``role`` (``user``, ``assistant``, ...) or else its ``type``
(``function_call``, ``reasoning``, ...). Behaviour follows the SDK's own
``SQLiteSession``: items come back in the order they were added; ``get_items(n)``
returns the newest ``n`` in chronological order (``0`` none, a negative ``n`` all);
``pop_item`` on an empty session returns ``None``; ``clear_session`` empties it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timezone
from typing import Any, TypeVar

from agents.items import TResponseInputItem
from agents.memory.session import SessionABC
from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)
from sqlalchemy import Connection

from ..codec import check_key, encode_object
from ..core import item_log
from ..core import repository as repo
from ..errors import CheckpointTypeError, StoreClosedError
from ..integration import StoreArg, async_store
from ..naming import OPENAI_PREFIX

#: The prefix of the store sessions that hold SDK conversations.
SESSION_PREFIX = OPENAI_PREFIX

_T = TypeVar("_T")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _name(item: Any) -> str:
    """What the operator sees as the row's name: the item's role, else its type."""
    if type(item) is not dict:
        return "item"  # refused by the codec right after, naming the item
    for key in ("role", "type"):
        value = item.get(key)
        if type(value) is str and value and "\x00" not in value and len(value) <= 200:
            return value
    return "item"


async def _finish(awaitable: Awaitable[_T]) -> _T:
    """Await a write to its outcome even if the caller is cancelled meanwhile.

    A write already handed to the database completes (or fails) as a whole; like the
    SDK's own sessions, the caller's cancellation is re-raised once it has.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    result = task.result()
    if cancelled is not None:
        raise cancelled
    return result


class BreakpilotSession(SessionABC):
    """An OpenAI Agents SDK session whose items live in a breakpilot_store database.

    Args:
        session_id: The conversation's id (stored as ``oai:<session_id>``).
        store: A path or URL, a :class:`~breakpilot_store.CheckpointStore`, an
            :class:`~breakpilot_store.AsyncCheckpointStore`, or ``None`` for the default
            store. What is opened here is closed by :meth:`aclose` (a
            ``CheckpointStore`` passed in stays open); pass a store to share one among
            many sessions.
        session_settings: The SDK's settings (``limit``: how many items
            :meth:`get_items` returns by default; ``None`` for all).

    Raises:
        CheckpointTypeError: ``session_id`` is not a str, or ``store`` is of no
            accepted kind.
        CheckpointValueError: ``session_id`` is empty, holds NUL or is too long.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        store: StoreArg = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self._key = check_key(SESSION_PREFIX + check_key(session_id, "session_id"), "session_id")
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._store, self._owns_store = async_store(store)
        self._closed = False

    @property
    def store_session_id(self) -> str:
        """The store session holding the items (what the CLI lists)."""
        return self._key

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"session {self.session_id!r} is closed")

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Return the conversation's items, oldest first.

        Args:
            limit: The newest ``limit`` items (in chronological order); ``None`` uses
                ``session_settings.limit``, and if that is ``None`` too, all items.
                ``0`` returns none and a negative limit all (as ``SQLiteSession``).

        Raises:
            CheckpointTypeError: ``limit`` is not an int (or ``None``).
        """
        self._check_open()
        n = resolve_session_limit(limit, self.session_settings)
        if n is not None and type(n) is not int:
            raise CheckpointTypeError(f"limit must be an int or None, not {type(n).__name__}")
        key = self._key

        def op(conn: Connection) -> list[Any]:
            return item_log.read(conn, key, limit=None if n and n < 0 else n)

        return await self._store.run(op)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in order, in one transaction (all or nothing).

        Raises:
            CheckpointTypeError: An item is not a dict, or holds a value JSON cannot
                carry exactly (the path is named, e.g. ``items[2]['content']``).
            CheckpointValueError: An item holds NaN/Infinity or is nested too deep.
        """
        self._check_open()
        if not items:
            return
        if not isinstance(items, list):
            raise CheckpointTypeError(f"items must be a list, not {type(items).__name__}")
        now = _now()
        # Encoded (and so validated) before the transaction: a refused item writes nothing.
        rows = [
            (_name(item), now, encode_object(item, f"items[{i}]")) for i, item in enumerate(items)
        ]
        key = self._key

        def op(conn: Connection) -> None:
            item_log.append(conn, key, rows, now)

        await _finish(self._store.run(op, write=True))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, or ``None`` if the session is empty.

        The removed item's seq is never handed out again.
        """
        self._check_open()
        key = self._key

        def op(conn: Connection) -> Any:
            popped = item_log.pop_newest(conn, key, _now())
            return None if popped is None else popped.data

        return await _finish(self._store.run(op, write=True))

    async def clear_session(self) -> None:
        """Delete every item of the session (its numbering continues afterwards)."""
        self._check_open()
        key = self._key

        def op(conn: Connection) -> None:
            repo.clear(conn, key, _now())

        await _finish(self._store.run(op, write=True))

    async def aclose(self) -> None:
        """Close the session, and the store if it was opened here (never one passed in)."""
        self._closed = True
        if self._owns_store:
            await self._store.close()

    async def __aenter__(self) -> BreakpilotSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"BreakpilotSession({self.session_id!r}, store_session_id={self._key!r})"
