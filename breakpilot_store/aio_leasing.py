"""A lease driven by asyncio: the async twin of :class:`~breakpilot_store.leasing.LeaseHolder`.

The same :class:`~breakpilot_store.leasing.LeaseState` (checks, token, renewal clock,
loss callbacks, the operations on a connection), run through
:meth:`AsyncCheckpointStore.run` with ``asyncio.sleep`` between acquisition attempts
and a heartbeat *task* instead of a thread. For the async manager: it acquires with
``await holder.acquire()``, passes ``holder`` as the fence of its writes, and ``await
holder.release()`` in its ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from .errors import BreakpilotStoreError, StoreClosedError
from .leasing import LeaseState

logger = logging.getLogger(__name__)


class AsyncLeaseHolder(LeaseState):
    """A :class:`LeaseState` driven by asyncio: awaited acquisition, a heartbeat task.

    Args:
        astore: The :class:`~breakpilot_store.aio.AsyncCheckpointStore` of the session.
        session_id: The session.
        duration: Seconds the lease lasts after each renewal.
        **kwargs: ``wait``, ``takeover`` and ``owner``, as for :class:`LeaseState`.
    """

    def __init__(self, astore: Any, session_id: str, duration: Any, **kwargs: Any) -> None:
        super().__init__(session_id, duration, **kwargs)
        self._astore = astore
        self._task: asyncio.Task[None] | None = None
        self._acquiring: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        """Acquire the lease, waiting up to ``wait`` seconds; then start the heartbeat.

        One acquisition at a time, whoever asks: concurrent first writes await the same
        one (each on its own, the second was refused by the first's live lease, and with
        ``takeover`` each started a heartbeat). It runs as a task of its own, shielded
        from the caller's cancellation, so an acquisition the writer committed is always
        recorded, and :meth:`release` can give it back.

        Raises:
            SessionLeasedError: Another holder's lease stayed live for the whole wait.
            LeaseLostError: This holder was released (its manager closed).
        """
        self.ensure_held()
        if self.token:
            return
        if self._acquiring is None:
            self._acquiring = asyncio.ensure_future(self._acquire())
        acquiring = self._acquiring
        try:
            await asyncio.shield(acquiring)
        finally:
            if acquiring.done() and self._acquiring is acquiring:
                self._acquiring = None  # a refusal may be tried again
                if not acquiring.cancelled():
                    acquiring.exception()  # retrieved: its error reached the callers

    async def _acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            holder = self.took(await self._astore.run(self.acquire_op, write=True))
            if holder is None:
                break
            pause = self.pause(deadline)
            if pause is None:
                raise self.refused(holder)
            await asyncio.sleep(pause)
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._task = asyncio.create_task(
            _beat(weakref.ref(self), self._astore, self.orphan_release()),
            name=f"lease-heartbeat:{self.session_id}",
        )

    def keep_beating(self) -> None:
        """Restart the heartbeat on the running loop if the loop it ran on has ended.

        A task ends with its loop: a manager that acquired in one ``asyncio.run`` and
        wrote on in the next had no heartbeat, and its lease lapsed between writes
        while it was alive (another manager then acquired it without ``takeover``).
        Each write calls this; between loops, only writes renew.
        """
        task = self._task
        if task is not None and (task.done() or task.get_loop() is not asyncio.get_running_loop()):
            if not (self.lost or self.released):
                self._start_heartbeat()

    async def beat(self) -> bool:
        """Renew once (the heartbeat's turn); ``False`` once there is nothing to renew."""
        try:
            expires = await self._astore.run(self.renew_op, write=True)
            if expires is None:
                self.mark_lost(await self._astore.run(self.lost_op))
                return False
        except StoreClosedError:
            return False
        except BreakpilotStoreError as exc:  # busy or unreachable: the next beat
            logger.warning("Session %s: lease renewal failed: %s", self.session_id, exc)
            return True
        self.expires_at = expires
        self.renewed()
        return True

    async def release(self) -> None:
        """Stop the heartbeat and release the lease (if still held). Idempotent."""
        if self.released:
            return
        self.released = True
        if self.in_child():
            return  # the parent's lease: not this process's to release
        if self._acquiring is not None:
            # Its caller was cancelled, or is still waiting: let the acquisition finish,
            # so that a lease it took is released here, not left to expire.
            await asyncio.wait({self._acquiring})  # its outcome, not its error
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif task is not None and not task.done():
            # Another loop's: cancelled from its own thread; it sees `released` anyway.
            with contextlib.suppress(RuntimeError):  # that loop has closed
                task.get_loop().call_soon_threadsafe(task.cancel)
        if self.lost or self.token == 0:
            return
        try:
            await self._astore.run(self.release_op, write=True)
        except BreakpilotStoreError as exc:  # it expires by itself
            logger.warning("Session %s: lease release failed: %s", self.session_id, exc)


async def _beat(
    holder_ref: weakref.ref[AsyncLeaseHolder],
    astore: Any,
    orphan_release: Callable[[Connection], bool],
) -> None:
    """The heartbeat task: renew every third of the lease until cancelled.

    It holds its holder weakly (see :meth:`LeaseState.orphan_release`): a manager
    dropped without ``close()`` gives its lease back at the next beat.
    """
    holder = holder_ref()
    interval = 0.0 if holder is None else holder.heartbeat_interval()
    del holder
    while True:
        await asyncio.sleep(interval)
        holder = holder_ref()
        if holder is None:
            with contextlib.suppress(BreakpilotStoreError):  # else it expires by itself
                await astore.run(orphan_release, write=True)
            return
        if holder.released or not await holder.beat():
            return
        del holder
