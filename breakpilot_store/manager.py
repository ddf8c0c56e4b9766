"""``CheckpointManager``: the seed's API, kept name for name, over a ``CheckpointStore``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from .checkpoint import Checkpoint, split_id
from .codec import check_key
from .core.checks import optional_limit
from .core.document import parse_document
from .errors import CheckpointTypeError, CheckpointValueError, LeaseLostError
from .leasing import LeaseHolder
from .store import CheckpointStore, aware
from .uncopyable import Uncopyable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CheckpointManager(Uncopyable):
    """Manages the checkpoints of one agent session, persisted in a store.

    The seed's in-memory manager, with its state in the database: a new manager for an
    existing session continues its numbering and sees all of its checkpoints, and
    several managers (or processes) on one session see each other's checkpoints and
    never produce the same id.

    Retention, applied in the same transaction as each ``create``: once the session
    holds more than ``compress_after`` checkpoints, it keeps the first one, the 20 most
    recent, and the highest-seq checkpoint of each name among the rest; then, if it
    still holds more than ``max_checkpoints``, the oldest are deleted (the first one
    last of those, the newest never) until it holds exactly ``max_checkpoints``.

    Args:
        session_id: The session this manager belongs to.
        max_checkpoints: Hard cap on the checkpoints the session holds (``None``: no cap).
        compress_after: Compress when the session holds more than this many (``None``:
            never).
        store: A :class:`CheckpointStore`, a path or URL (a store is opened for this
            manager and closed by :meth:`close`), or ``None`` for the default store.
        lease: Hold the session's lease, for this many seconds (at least 0.1) after
            each renewal (``None``: no lease). While it is held, writes by anyone else are refused
            (:class:`SessionLeasedError`); each of this manager's writes checks in its
            own transaction that its fencing token is still current
            (:class:`LeaseLostError` otherwise). A heartbeat thread renews it every
            ``lease / 3`` seconds; :meth:`close` releases it (so does dropping the
            manager, at the next beat). A forked child's copy cannot write with it.
        lease_wait: Seconds to wait for another holder's live lease before raising
            :class:`SessionLeasedError` (default: do not wait).
        takeover: Acquire at once even if another holder's lease is live (for a
            supervisor that knows the old holder is gone); it loses the lease.
        owner: Who holds the lease, as operators see it (default ``host:pid``).

    Raises:
        CheckpointValueError: Empty session id, or non-positive limits.
        CheckpointTypeError: Arguments of the wrong type.
        SessionLeasedError: ``lease`` was asked for and another holder's lease stayed
            live for ``lease_wait`` seconds.
    """

    def __init__(
        self,
        session_id: str,
        max_checkpoints: int | None = 100,
        compress_after: int | None = 50,
        store: CheckpointStore | str | os.PathLike[str] | URL | None = None,
        *,
        lease: float | None = None,
        lease_wait: float = 0.0,
        takeover: bool = False,
        owner: str | None = None,
    ) -> None:
        self.session_id = check_key(session_id, "session_id")
        # None turns either step off, as in ``CheckpointStore.create`` (README: the API).
        self.max_checkpoints = optional_limit(max_checkpoints, "max_checkpoints")
        self.compress_after = optional_limit(compress_after, "compress_after")
        self._owns_store = not isinstance(store, CheckpointStore)
        self.store: CheckpointStore = (
            store if isinstance(store, CheckpointStore) else CheckpointStore(store)
        )
        self._on_checkpoint: Callable[[Checkpoint], None] | None = None
        self._lease: LeaseHolder | None = None
        if lease is not None:
            holder = LeaseHolder(
                self.store, self.session_id, lease, wait=lease_wait, takeover=takeover, owner=owner
            )
            try:
                holder.acquire()
            except BaseException:
                self.close()
                raise
            self._lease = holder
        elif lease_wait != 0.0 or takeover or owner is not None:
            raise CheckpointValueError("lease_wait, takeover and owner need lease= (seconds)")

    @property
    def lease_token(self) -> int | None:
        """The fencing token of this manager's lease (``None`` without a lease)."""
        return None if self._lease is None else self._lease.token

    @property
    def lease_lost(self) -> bool:
        """Whether this manager is known to have lost its lease (``False`` without one)."""
        return self._lease is not None and self._lease.lost

    def on_lease_lost(self, callback: Callable[[LeaseLostError], object]) -> None:
        """Register a callback to hear of a lost lease as soon as this process learns it.

        Called once, with the :class:`LeaseLostError`, from the heartbeat thread (at most
        ``lease / 3`` seconds after the takeover) or from the write that found it.

        Raises:
            CheckpointValueError: This manager holds no lease.
        """
        if self._lease is None:
            raise CheckpointValueError("on_lease_lost needs a manager made with lease=")
        self._lease.on_lost(callback)

    def _fenced(self, write: Callable[[Any], T]) -> T:
        """Run a write with this manager's fence, noting a loss it reveals."""
        lease = self._lease
        if lease is None:
            return write(None)
        lease.ensure_held()
        try:
            return write(lease)
        except LeaseLostError as exc:
            lease.mark_lost(exc)
            raise

    def close(self) -> None:
        """Release the lease (if held), then close the store if this manager opened it.

        A store passed in stays open.
        """
        if self._lease is not None:
            self._lease.release()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(
        self, name: str, data: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> Checkpoint:
        """Create a checkpoint, then apply the retention rule, in one transaction.

        ``data`` is stored as a snapshot: changing the dict afterwards changes nothing
        stored. The ``on_checkpoint`` callback runs after the commit; if it raises, the
        exception propagates and the checkpoint stays stored.

        Args:
            name: Semantic name for the checkpoint (e.g., ``"task_started"``).
            data: Checkpoint data to store (a JSON-exact dict).
            metadata: Optional additional metadata (a JSON-exact dict).

        Returns:
            The created checkpoint.

        Raises:
            CheckpointTypeError: A value JSON cannot carry exactly (path named).
            CheckpointValueError: A bad name or value (NaN, ...). Nothing is written.
        """
        # The session id and the limits were checked when the manager was made.
        lease = self._lease
        if lease is None:  # every agent's step: no closure, no try
            checkpoint = self.store._create(
                self.session_id, name, data, metadata, self.compress_after, self.max_checkpoints
            )
        else:
            lease.ensure_held()
            try:
                checkpoint = self.store._create(
                    self.session_id,
                    name,
                    data,
                    metadata,
                    self.compress_after,
                    self.max_checkpoints,
                    lease,
                )
            except LeaseLostError as exc:
                lease.mark_lost(exc)
                raise
        if logger.isEnabledFor(logging.DEBUG):  # (the seq is parsed only to be logged)
            logger.debug(
                "Session %s: Created checkpoint %r (#%d)", self.session_id, name, checkpoint.seq
            )
        if self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)
        return checkpoint

    def get(self, checkpoint_id: str) -> Checkpoint | None:
        """Get one of this session's checkpoints by id, or ``None`` if not found."""
        if not isinstance(checkpoint_id, str):
            raise CheckpointTypeError(
                f"checkpoint_id must be a str, not {type(checkpoint_id).__name__}"
            )
        parts = split_id(checkpoint_id)
        if parts is None or parts[0] != self.session_id:
            return None
        return self.store.get(checkpoint_id)

    def get_by_name(self, name: str) -> list[Checkpoint]:
        """Get all checkpoints with a given name, newest first."""
        return self.store.list_checkpoints(self.session_id, name=name, newest_first=True)

    def get_latest(self, name: str | None = None) -> Checkpoint | None:
        """Get the latest checkpoint (highest seq), optionally of one name."""
        return self.store.get_latest(self.session_id, name or None)

    def get_all(self) -> list[Checkpoint]:
        """Return all checkpoints, oldest first."""
        return self.store.list_checkpoints(self.session_id)

    def get_since(self, timestamp: datetime) -> list[Checkpoint]:
        """Get the checkpoints created strictly after ``timestamp`` (an aware datetime)."""
        return self.store.list_checkpoints(self.session_id, since=aware(timestamp, "timestamp"))

    def get_between(self, start: datetime, end: datetime) -> list[Checkpoint]:
        """Get the checkpoints created in ``[start, end]`` (aware datetimes, inclusive)."""
        return self.store.list_checkpoints(
            self.session_id, start=aware(start, "start"), end=aware(end, "end")
        )

    def rollback_to(self, checkpoint_id: str) -> dict[str, Any] | None:
        """Return the data needed to roll back to a checkpoint, or ``None``.

        Like the seed, this changes nothing: the caller restores its own state.
        """
        checkpoint = self.get(checkpoint_id)
        if checkpoint is None:
            return None
        logger.info(
            "Session %s: Rollback to checkpoint %r (%s)",
            self.session_id,
            checkpoint.name,
            checkpoint_id,
        )
        return checkpoint.data

    def clear(self) -> int:
        """Delete all of the session's checkpoints; numbering continues afterwards.

        Returns:
            Number of checkpoints cleared.
        """
        count = self._fenced(lambda fence: self.store.clear(self.session_id, fence=fence))
        logger.info("Session %s: Cleared %d checkpoints", self.session_id, count)
        return count

    def get_summary(self) -> dict[str, Any]:
        """Get a summary of checkpoint activity (the seed's keys)."""
        return self.store.summary(self.session_id)

    def on_checkpoint(self, callback: Callable[[Checkpoint], None]) -> None:
        """Set a callback to be called (after commit) with each created checkpoint."""
        self._on_checkpoint = callback

    def export(self) -> str:
        """Export all checkpoints as the seed's JSON (a list of ``to_dict()``, indent 2).

        The cyclic garbage collector is paused (process-wide) for the call.
        """
        return self.store.export_json(self.session_id)

    def import_checkpoints(self, json_data: str) -> int:
        """Import checkpoints from JSON (the export format), all or nothing.

        See :meth:`CheckpointStore.import_checkpoints` for the rules. The cyclic
        garbage collector is paused (process-wide) while the document is parsed and
        written, and restored afterwards.

        Returns:
            Number of checkpoints written (entries already stored are not counted).

        Raises:
            ImportFormatError: Malformed document or entry; nothing is written.
            ImportConflictError: An entry differs from the stored checkpoint of its id.
        """
        entries = parse_document(json_data)
        return self._fenced(
            lambda fence: self.store.import_checkpoints(self.session_id, entries, fence=fence)
        )

    def __len__(self) -> int:
        return self.store.count(self.session_id)

    def __iter__(self) -> Iterator[Checkpoint]:
        return iter(self.get_all())

    def __repr__(self) -> str:
        return f"CheckpointManager({self.session_id!r}, store={self.store!r})"
