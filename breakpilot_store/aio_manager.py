"""``AsyncCheckpointManager``: the seed's API for asyncio code, over an ``AsyncCheckpointStore``."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL

from .aio import AsyncCheckpointStore
from .aio_leasing import AsyncLeaseHolder
from .checkpoint import Checkpoint, split_id
from .codec import check_key
from .core import checks
from .core.document import parse_document
from .errors import CheckpointValueError, LeaseLostError
from .store import CheckpointStore
from .uncopyable import Uncopyable

logger = logging.getLogger("breakpilot_store.manager")

Callback = Callable[[Checkpoint], None] | Callable[[Checkpoint], Awaitable[None]]


class AsyncCheckpointManager(Uncopyable):
    """The checkpoints of one agent session, for asyncio code.

    Every method of :class:`~breakpilot_store.manager.CheckpointManager` is here as a
    coroutine with the same name, arguments, results, ordering and errors, plus
    :meth:`count` (what ``len(mgr)`` is in the sync API) and ``async for`` (oldest
    first). Both managers share one database: what either writes, the other reads.

    Args:
        session_id: The session this manager belongs to.
        max_checkpoints: Hard cap on the checkpoints the session holds (``None``: no cap).
        compress_after: Compress when the session holds more than this many (``None``:
            never).
        store: An :class:`AsyncCheckpointStore`; a :class:`CheckpointStore` (run through
            an async front that leaves it open); a path or URL (a store is opened for
            this manager and closed by :meth:`close`); or ``None`` for the default store.
            The constructor does no I/O.
        lease, lease_wait, takeover, owner: As for
            :class:`~breakpilot_store.manager.CheckpointManager`; the lease is acquired
            by ``async with`` (or :meth:`acquire_lease`, or the first write) and renewed
            by a heartbeat task; :meth:`close` releases it.

    Raises:
        CheckpointValueError: Empty session id, or non-positive limits.
        CheckpointTypeError: Arguments of the wrong type.
    """

    def __init__(
        self,
        session_id: str,
        max_checkpoints: int | None = 100,
        compress_after: int | None = 50,
        store: AsyncCheckpointStore | CheckpointStore | str | os.PathLike[str] | URL | None = None,
        *,
        lease: float | None = None,
        lease_wait: float = 0.0,
        takeover: bool = False,
        owner: str | None = None,
    ) -> None:
        self.session_id = check_key(session_id, "session_id")
        # None turns either step off, as in ``CheckpointStore.create`` (README: the API).
        self.max_checkpoints = checks.optional_limit(max_checkpoints, "max_checkpoints")
        self.compress_after = checks.optional_limit(compress_after, "compress_after")
        self._owns_store = not isinstance(store, AsyncCheckpointStore | CheckpointStore)
        if isinstance(store, AsyncCheckpointStore):
            self.store = store
        elif isinstance(store, CheckpointStore):
            self.store = AsyncCheckpointStore.wrap(store)
        else:
            self.store = AsyncCheckpointStore(store)
        self._on_checkpoint: Callback | None = None
        self._lease: AsyncLeaseHolder | None = None
        if lease is not None:  # checked now; acquired on first use (no I/O here)
            self._lease = AsyncLeaseHolder(
                self.store, self.session_id, lease, wait=lease_wait, takeover=takeover, owner=owner
            )
        elif lease_wait != 0.0 or takeover or owner is not None:
            raise CheckpointValueError("lease_wait, takeover and owner need lease= (seconds)")

    @property
    def lease_token(self) -> int | None:
        """The fencing token of this manager's lease (``None`` without a lease or before it)."""
        return None if self._lease is None or not self._lease.token else self._lease.token

    @property
    def lease_lost(self) -> bool:
        """Whether this manager is known to have lost its lease."""
        return self._lease is not None and self._lease.lost

    def on_lease_lost(self, callback: Callable[[LeaseLostError], object]) -> None:
        """Register a callback for a lost lease (see ``CheckpointManager.on_lease_lost``)."""
        if self._lease is None:
            raise CheckpointValueError("on_lease_lost needs a manager made with lease=")
        self._lease.on_lost(callback)

    async def acquire_lease(self) -> None:
        """Acquire the lease now if not yet held (``async with`` and the first write do).

        Raises:
            SessionLeasedError: Another holder's lease stayed live for ``lease_wait``.
        """
        if self._lease is not None and not self._lease.token:
            await self._lease.acquire()

    async def _fence(self) -> AsyncLeaseHolder | None:
        lease = self._lease
        if lease is None:
            return None
        if not lease.token:
            await lease.acquire()
        lease.ensure_held()
        lease.keep_beating()
        return lease

    async def close(self) -> None:
        """Release the lease (if held), then close the store if this manager opened it."""
        if self._lease is not None:
            await self._lease.release()
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> AsyncCheckpointManager:
        await self.store.open()
        try:
            await self.acquire_lease()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create(
        self, name: str, data: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> Checkpoint:
        """Create a checkpoint, then apply the retention rule, in one transaction.

        Returns after the commit. ``data`` is encoded when the call is made (a
        snapshot). The ``on_checkpoint`` callback runs after the commit (a coroutine
        callback is awaited); if it raises, the exception propagates and the checkpoint
        stays stored.

        Raises:
            CheckpointTypeError: A value JSON cannot carry exactly (path named).
            CheckpointValueError: A bad name or value (NaN, ...). Nothing is written.
        """
        fence = None if self._lease is None else await self._fence()
        try:
            checkpoint = await self.store._create(
                self.session_id,
                name,
                data,
                metadata,
                self.compress_after,
                self.max_checkpoints,
                fence,
            )
        except LeaseLostError as exc:
            if fence is not None:
                fence.mark_lost(exc)
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Session %s: Created checkpoint %r (#%d)", self.session_id, name, checkpoint.seq
            )
        if self._on_checkpoint is not None:
            outcome = self._on_checkpoint(checkpoint)
            if inspect.isawaitable(outcome):
                await outcome
        return checkpoint

    async def get(self, checkpoint_id: str) -> Checkpoint | None:
        """Get one of this session's checkpoints by id, or ``None`` if not found."""
        checks.checkpoint_id(checkpoint_id)
        parts = split_id(checkpoint_id)
        if parts is None or parts[0] != self.session_id:
            return None
        return await self.store.get(checkpoint_id)

    async def get_by_name(self, name: str) -> list[Checkpoint]:
        """Get all checkpoints with a given name, newest first."""
        return await self.store.list_checkpoints(self.session_id, name=name, newest_first=True)

    async def get_latest(self, name: str | None = None) -> Checkpoint | None:
        """Get the latest checkpoint (highest seq), optionally of one name."""
        return await self.store.get_latest(self.session_id, name or None)

    async def get_all(self) -> list[Checkpoint]:
        """Return all checkpoints, oldest first."""
        return await self.store.list_checkpoints(self.session_id)

    async def get_since(self, timestamp: datetime) -> list[Checkpoint]:
        """Get the checkpoints created strictly after ``timestamp`` (an aware datetime)."""
        since = checks.aware(timestamp, "timestamp")
        return await self.store.list_checkpoints(self.session_id, since=since)

    async def get_between(self, start: datetime, end: datetime) -> list[Checkpoint]:
        """Get the checkpoints created in ``[start, end]`` (aware datetimes, inclusive)."""
        start, end = checks.aware(start, "start"), checks.aware(end, "end")
        return await self.store.list_checkpoints(self.session_id, start=start, end=end)

    async def rollback_to(self, checkpoint_id: str) -> dict[str, Any] | None:
        """Return the data needed to roll back to a checkpoint, or ``None`` (changes nothing)."""
        checkpoint = await self.get(checkpoint_id)
        if checkpoint is None:
            return None
        logger.info(
            "Session %s: Rollback to checkpoint %r (%s)",
            self.session_id,
            checkpoint.name,
            checkpoint_id,
        )
        return checkpoint.data

    async def clear(self) -> int:
        """Delete all of the session's checkpoints; numbering continues. How many."""
        fence = await self._fence()
        try:
            count = await self.store.clear(self.session_id, fence=fence)
        except LeaseLostError as exc:
            if fence is not None:
                fence.mark_lost(exc)
            raise
        logger.info("Session %s: Cleared %d checkpoints", self.session_id, count)
        return count

    async def get_summary(self) -> dict[str, Any]:
        """Get a summary of checkpoint activity (the seed's keys)."""
        return await self.store.summary(self.session_id)

    def on_checkpoint(self, callback: Callback) -> None:
        """Set a callback run after each create's commit: a function or a coroutine function."""
        self._on_checkpoint = callback

    async def export(self) -> str:
        """Export all checkpoints as the seed's JSON (a list of ``to_dict()``, indent 2)."""
        return await self.store.export_json(self.session_id)

    async def import_checkpoints(self, json_data: str) -> int:
        """Import checkpoints from JSON (the export format), all or nothing.

        The document is parsed as it is written, off the event loop.

        Returns:
            Number of checkpoints written (entries already stored are not counted).

        Raises:
            ImportFormatError: Malformed document or entry; nothing is written.
            ImportConflictError: An entry differs from the stored checkpoint of its id.
        """
        entries = parse_document(json_data)
        fence = await self._fence()
        try:
            return await self.store.import_checkpoints(self.session_id, entries, fence=fence)
        except LeaseLostError as exc:
            if fence is not None:
                fence.mark_lost(exc)
            raise

    async def count(self) -> int:
        """How many checkpoints the session holds (``len(mgr)`` in the sync API)."""
        return await self.store.count(self.session_id)

    async def __aiter__(self) -> AsyncIterator[Checkpoint]:
        for checkpoint in await self.get_all():
            yield checkpoint

    def __repr__(self) -> str:
        return f"AsyncCheckpointManager({self.session_id!r}, store={self.store!r})"
