"""A manager's lease on its session: acquisition, heartbeat, loss and release.

:class:`LeaseState` is what both managers share: the arguments' checks, the token this
holder got, when it last renewed, whether it lost the lease and who to tell, and the
operations (functions of a connection, for ``store.run``) that acquire, renew and
release. :class:`LeaseHolder` drives them for the sync :class:`CheckpointManager`: a
blocking acquisition that waits up to ``lease_wait`` and a heartbeat daemon thread. An
async manager drives the same state with ``await astore.run(op)`` and an asyncio task.

The state doubles as the *fence* the store's writes carry (``token``, ``duration``,
``renewal_due()``, ``renewed()``): see :mod:`breakpilot_store.core.leases`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection

from .codec import check_key
from .core import leases
from .core.leases import LeaseInfo
from .errors import (
    BreakpilotStoreError,
    CheckpointTypeError,
    CheckpointValueError,
    LeaseLostError,
    SessionLeasedError,
    StoreClosedError,
)

logger = logging.getLogger(__name__)

#: Longest pause between two acquisition attempts while waiting for a lease.
POLL_INTERVAL = 0.25

#: Longest lease or wait accepted (100 years): a thread can wait that long and an expiry
#: that far ahead is still a date (``lease=2**70`` raised ``OverflowError``).
MAX_SECONDS = 100 * 365.25 * 86400

#: Shortest lease accepted. The heartbeat renews every third of it: ``lease=5e-324``
#: made that a loop of back-to-back write transactions (a core's worth of CPU, and
#: every other writer of the database slowed three-fold) for a lease that had always
#: expired by the time anyone read it.
MIN_LEASE = 0.1


def default_owner() -> str:
    """``host:pid``: who holds a lease unless the holder names itself."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _seconds(value: Any, what: str, *, zero_ok: bool) -> float:
    if type(value) not in (int, float):
        raise CheckpointTypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise CheckpointValueError(
            f"{what} must be a finite number of seconds {bound}, not {value!r}"
        )
    if value > MAX_SECONDS:
        raise CheckpointValueError(
            f"{what} must be at most {MAX_SECONDS:.0f} seconds (100 years), not {value!r}"
        )
    return float(value)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LeaseState:
    """One holder's lease on one session (shared by the sync and async managers).

    Args:
        session_id: The session.
        duration: Seconds the lease lasts after each renewal (``lease=``).
        wait: Seconds to wait for another holder's live lease (``lease_wait=``).
        takeover: Acquire at once even if another holder's lease is live.
        owner: Who holds it (``host:pid`` by default), as operators and
            :class:`SessionLeasedError` name it.

    Raises:
        CheckpointTypeError: An argument of the wrong type.
        CheckpointValueError: A duration that is not positive and finite, a negative
            wait, or an empty owner.
    """

    def __init__(
        self,
        session_id: str,
        duration: Any,
        *,
        wait: Any = 0.0,
        takeover: Any = False,
        owner: Any = None,
    ) -> None:
        self.session_id = session_id
        self.duration = _seconds(duration, "lease", zero_ok=False)
        if self.duration < MIN_LEASE:
            raise CheckpointValueError(
                f"lease must be at least {MIN_LEASE} seconds (the heartbeat renews it every "
                f"third of it), not {duration!r}"
            )
        self.wait = _seconds(wait, "lease_wait", zero_ok=True)
        if type(takeover) is not bool:
            raise CheckpointTypeError(f"takeover must be a bool, not {type(takeover).__name__}")
        self.takeover = takeover
        if owner is None:
            owner = default_owner()
        # Stored and shown like a session id: no lone surrogate (UnicodeEncodeError at
        # the first write), no NUL (PostgreSQL refuses it), at most 1024 characters.
        self.owner = check_key(owner, "owner")
        #: The fencing token this holder got (0 until acquired).
        self.token = 0
        #: The expiry the last acquisition or renewal reported (database clock).
        self.expires_at: datetime | None = None
        self.lost = False
        self.released = False
        #: The process that acquired it: a fork's child inherits this object, not the lease.
        self.pid = 0
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._callbacks: list[Callable[[LeaseLostError], object]] = []
        self._lock = threading.Lock()

    # -- the fence a write carries ------------------------------------------------------

    def renewal_due(self) -> bool:
        """Whether a third of the lease has passed since the last renewal.

        The heartbeat renews on that schedule; a write that finds it overdue (the
        heartbeat is late: a busy database, a starved thread) renews in its own
        transaction.
        """
        return time.monotonic() - self._renewed >= self.duration / 3

    def renewed(self) -> None:
        """Note a renewal that committed."""
        self._renewed = time.monotonic()

    def ensure_held(self) -> None:
        """Raise :class:`LeaseLostError` at once if the loss is already known.

        A loss is final (a later token never becomes current again), so a write need
        not ask the database again.
        """
        if self.lost or self.released:
            raise LeaseLostError(self.session_id, self.token)
        if self.in_child():
            raise self.forked()

    def forked(self) -> LeaseLostError:
        """The error of a write from a forked child of the holder.

        The child inherits the manager and its token but not the lease: with them, its
        writes passed the fence beside its parent's, and its ``close()`` released the
        parent's live lease.
        """
        return LeaseLostError(
            self.session_id,
            self.token,
            reason=(
                f"this process ({os.getpid()}) is a fork of the holder ({self.pid}), and the "
                "lease stays with the holder; make a new manager with lease= here"
            ),
        )

    def in_child(self) -> bool:
        """Whether this is a forked child's copy (it must neither renew nor release)."""
        return bool(self.token) and self.pid != os.getpid()

    def orphan_release(self) -> Callable[[Connection], bool]:
        """The release of this lease as a plain operation holding no reference to it.

        A heartbeat holds only a weak reference to its holder, so that a manager
        dropped without ``close()`` does not renew its lease for the life of the
        process (a retry in the same process was refused by its own forgotten lease).
        When the holder is gone, the heartbeat gives the lease back with this.
        """
        return functools.partial(leases.release, session_id=self.session_id, token=self.token)

    def on_lost(self, callback: Callable[[LeaseLostError], object]) -> None:
        """Register a callback, called once (from the heartbeat or the failing write)."""
        self._callbacks.append(callback)

    def mark_lost(self, error: LeaseLostError) -> None:
        """Record the loss and tell the callbacks (once)."""
        with self._lock:
            if self.lost:
                return
            self.lost = True
        logger.warning("Session %s: %s", self.session_id, error)
        for callback in list(self._callbacks):
            try:
                callback(error)
            except Exception:  # a callback must not kill the heartbeat
                logger.exception("Session %s: lease-lost callback failed", self.session_id)

    # -- operations for store.run(op, write=True) ---------------------------------------

    def acquire_op(self, conn: Connection) -> tuple[int, datetime] | LeaseInfo:
        """Try once to acquire (see :func:`breakpilot_store.core.leases.acquire`)."""
        return leases.acquire(
            conn, self.session_id, self.owner, self.duration, _utcnow(), takeover=self.takeover
        )

    def renew_op(self, conn: Connection) -> datetime | None:
        """Renew under this holder's token; ``None`` if it is no longer current."""
        return leases.renew(conn, self.session_id, self.token, self.duration, _utcnow())

    def lost_op(self, conn: Connection) -> LeaseLostError:
        """The loss, naming who holds the session now."""
        return leases.lost(conn, self.session_id, self.token, _utcnow())

    def release_op(self, conn: Connection) -> bool:
        """Release if still held under this holder's token."""
        return leases.release(conn, self.session_id, self.token)

    # -- deciding, for either driver ----------------------------------------------------

    def took(self, result: tuple[int, datetime] | LeaseInfo) -> LeaseInfo | None:
        """Record an acquisition attempt's result; return the standing lease if refused."""
        if isinstance(result, LeaseInfo):
            return result
        self.token, self.expires_at = result
        self.pid = os.getpid()
        self.renewed()
        logger.info(
            "Session %s: lease acquired by %s (token %d)", self.session_id, self.owner, self.token
        )
        return None

    def pause(self, deadline: float) -> float | None:
        """Seconds to sleep before the next attempt, or ``None`` if the wait is over."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        return min(left, POLL_INTERVAL)

    def refused(self, holder: LeaseInfo) -> SessionLeasedError:
        """The error once the wait is over."""
        return leases.leased(holder)

    def heartbeat_interval(self) -> float:
        """Seconds between renewals: a third of the lease."""
        return self.duration / 3


class LeaseHolder(LeaseState):
    """A :class:`LeaseState` driven by threads: blocking acquisition and a heartbeat.

    Args:
        store: The :class:`~breakpilot_store.store.CheckpointStore` the session is in.
        session_id, duration, wait, takeover, owner: As for :class:`LeaseState`.
    """

    def __init__(self, store: Any, session_id: str, duration: Any, **kwargs: Any) -> None:
        super().__init__(session_id, duration, **kwargs)
        self._store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Acquire the lease, waiting up to ``wait`` seconds; then start the heartbeat.

        Raises:
            SessionLeasedError: Another holder's lease stayed live for the whole wait.
        """
        deadline = time.monotonic() + self.wait
        while True:
            holder = self.took(self._store.run(self.acquire_op, write=True))
            if holder is None:
                break
            pause = self.pause(deadline)
            if pause is None:
                raise self.refused(holder)
            time.sleep(pause)
        self._thread = threading.Thread(
            target=_beat,
            args=(weakref.ref(self), self._store, self._stop, self.orphan_release()),
            name=f"lease-heartbeat:{self.session_id}",
            daemon=True,
        )
        self._thread.start()
        # Dropped without release(): wake the heartbeat now, to give the lease back.
        weakref.finalize(self, self._stop.set)

    def beat(self) -> bool:
        """Renew once (the heartbeat's turn); ``False`` once there is nothing to renew."""
        try:
            expires = self._store.run(self.renew_op, write=True)
            if expires is None:
                self.mark_lost(self._store.run(self.lost_op))
                return False
        except StoreClosedError:
            return False
        except BreakpilotStoreError as exc:
            # A busy or unreachable database: try again at the next beat; the lease
            # lasts three beats, and a write fences itself anyway.
            if self._stop.is_set():
                return False
            logger.warning("Session %s: lease renewal failed: %s", self.session_id, exc)
            return True
        self.expires_at = expires
        self.renewed()
        return True

    def release(self) -> None:
        """Stop the heartbeat and release the lease (if still held). Idempotent."""
        if self.released:
            return
        self.released = True
        self._stop.set()
        if self.in_child():
            return  # the parent's lease: not this process's to release (no heartbeat here)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.lost or self.token == 0:
            return
        try:
            self._store.run(self.release_op, write=True)
        except BreakpilotStoreError as exc:  # it expires by itself
            logger.warning("Session %s: lease release failed: %s", self.session_id, exc)


def _beat(
    holder_ref: weakref.ref[LeaseHolder],
    store: Any,
    stop: threading.Event,
    orphan_release: Callable[[Connection], bool],
) -> None:
    """The heartbeat thread: renew every third of the lease until stopped.

    It holds its holder weakly (see :meth:`LeaseState.orphan_release`).
    """
    holder = holder_ref()
    interval = 0.0 if holder is None else holder.heartbeat_interval()
    del holder
    while not stop.wait(interval):
        holder = holder_ref()
        if holder is None or not holder.beat():
            break
        del holder  # (not held while the thread waits)
    if holder_ref() is None:
        with contextlib.suppress(BreakpilotStoreError):  # else it expires by itself
            store.run(orphan_release, write=True)
