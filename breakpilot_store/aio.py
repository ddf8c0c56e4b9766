"""``AsyncCheckpointStore``: the store for asyncio code (first cut: the seam only).

This module fixes the async front's shape so that the framework integrations can be
built on it: construction without I/O, ``open``/``close``/``async with``, ``wrap`` of
a sync store, ``sync_store`` for the sync side of a dual API, and ``run`` (the async
twin of :meth:`CheckpointStore.run`). Every operation runs on a worker thread, so the
event loop never waits on the database. Group commit and the rest of the async API
replace the internals, not this interface.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from .errors import StoreClosedError
from .store import CheckpointStore

T = TypeVar("T")


class AsyncCheckpointStore:
    """A checkpoint store for asyncio code, over the same database as the sync API.

    The constructor does no I/O: the store opens (creating or upgrading the schema under
    the same lock as :class:`CheckpointStore`) on :meth:`open`, on ``async with``, or on
    first use.

    Args:
        url: A filesystem path, a SQLAlchemy URL, or ``None`` for the default store.
        **options: The keyword arguments of :class:`CheckpointStore` (``durability``,
            ``busy_timeout``, ``migrate``, ``readonly`` and backend options).
    """

    def __init__(self, url: str | os.PathLike[str] | URL | None = None, **options: Any) -> None:
        self._url = url
        self._options = options
        self._store: CheckpointStore | None = None
        self._owns = True
        self._closed = False
        self._open_lock = threading.Lock()

    @classmethod
    def wrap(cls, store: CheckpointStore) -> AsyncCheckpointStore:
        """An async front over an open sync store; closing it leaves ``store`` open."""
        front = cls(store.url)
        front._store = store
        front._owns = False
        return front

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def sync_store(self) -> CheckpointStore:
        """The :class:`CheckpointStore` this front runs on, opened (blocking) if need be.

        For the sync half of an API that offers both (the framework integrations): sync
        callers may block, and share the database, schema and options with this store.
        """
        if self._closed:
            raise StoreClosedError(f"store {self._url!s} is closed")
        with self._open_lock:
            if self._store is None:
                self._store = CheckpointStore(self._url, **self._options)
            return self._store

    async def open(self) -> AsyncCheckpointStore:
        """Open the database now (it opens on first use otherwise); returns ``self``."""
        await asyncio.to_thread(lambda: self.sync_store)
        return self

    async def close(self) -> None:
        """Close the store (a store given to :meth:`wrap` stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._store is not None and self._owns:
            await asyncio.to_thread(self._store.close)

    async def __aenter__(self) -> AsyncCheckpointStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def run(self, operation: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run ``operation(conn)`` in one transaction, off the event loop.

        The async twin of :meth:`CheckpointStore.run`, with the same contract.
        """
        store = await asyncio.to_thread(lambda: self.sync_store)
        return await asyncio.to_thread(store.run, operation, write=write)
