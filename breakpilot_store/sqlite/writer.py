"""The async store's SQLite writer: one thread, one connection, group commit.

Every write of an :class:`~breakpilot_store.aio.AsyncCheckpointStore` on SQLite is queued
here. The thread takes the first write waiting, then every other write waiting at that
moment (from any task, any session), and runs them all in one ``BEGIN IMMEDIATE ...
COMMIT`` (:func:`breakpilot_store.core.group.run_group`): one fsync for the group. There
is no timer: a lone write commits at once, and the writes that arrive while a group
commits form the next group, so the groups grow exactly as fast as writes pile up.

Each caller waits on a future of its event loop, resolved only after the commit returned
(durable at the store's ``durability``), a slice of callers per turn of the loop
(:func:`~breakpilot_store.core.group.wake`, reached through the loop's own eventfd:
:mod:`~breakpilot_store.core.loopwake`); after a group of more callers than one
slice, the thread lets their loop wake them all before it takes up the next group
(:data:`DELIVERY_WAIT`). Cancellation: a write dropped before the
thread takes it up is skipped (nothing is written); once taken up it commits or fails as
a whole with its group (:func:`~breakpilot_store.core.group.outcome`).
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..core.group import (
    DROPPED,
    QUEUED,
    TAKEN,
    WAKE_SLICE,
    WaitingWrite,
    run_group,
    typed,
    wake,
)
from ..core.group_create import write_creates
from ..core.loopwake import waker_for
from ..core.operations import Operation
from ..engine import WRITE
from ..errors import StoreClosedError
from ..forkgate import GATE
from .fastpath import DriverConnection

#: Most writes one transaction takes: bounds how long the first of them waits.
MAX_GROUP = 1000

#: How long (seconds) the writer waits, after a group of more callers than one turn of
#: their loop wakes, for the loop to wake them all before it takes up the next group.
#: Waking them is the loop's busiest time (each woken task runs its next step); the
#: next group's Python work on this thread would make every turn of it wait for the
#: GIL as well (the convoy: this thread takes the GIL back after each short driver
#: call before the loop's thread, woken, can). Meanwhile the woken callers' next writes
#: queue up and form the next group. The wait is bounded: a loop kept busy elsewhere
#: must not hold up other loops' writes.
DELIVERY_WAIT = 0.02

_STOP = object()


class GroupWriter:
    """A thread that commits queued writes in groups (see the module docstring).

    On SQLite; :class:`~breakpilot_store.postgres.aio.PostgresGroupWriter` is the same
    thread on a PostgreSQL connection.

    Args:
        engine: The store's engine (a SQLite engine's connections carry the PRAGMAs).
        where: How errors name the database.
        hot: Run hot operations on the bare driver connection of the same transaction
            (a SQLite file's hot path).
        alone: Runs a hot write that is alone in its group, on this thread (the sync
            store's hot path: no group, no savepoint).
        closed: Whether the sync store the writes go to was closed (checked before
            each group: those writes then fail with ``StoreClosedError``).
    """

    def __init__(
        self,
        engine: Engine,
        where: str,
        *,
        hot: bool,
        alone: Callable[[Operation[Any]], Any] | None = None,
        closed: Callable[[], bool] | None = None,
    ) -> None:
        self._engine = engine
        self._store_closed = closed
        self._where = where
        self._hot = hot
        self._alone = alone
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._delivering: threading.Event | None = None
        #: Transactions committed (a test counts them to see the grouping).
        self.commits = 0
        self._thread = threading.Thread(
            target=self._main, name="breakpilot-store-writer", daemon=True
        )
        self._thread.start()

    def submit(self, op: Operation[Any], loop: asyncio.AbstractEventLoop) -> WaitingWrite:
        """Queue a write from ``loop``'s thread.

        Returns:
            The pending write: a future of ``loop`` that resolves after the group's
            commit (cancelling it: :meth:`~breakpilot_store.core.group.WaitingWrite.cancel`).

        Raises:
            StoreClosedError: :meth:`close` was called.
        """
        item = WaitingWrite(op, loop, waker_for(loop), self)
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self._where} is closed")
            self._queue.put(item)
        return item

    def drop(self, item: WaitingWrite) -> bool:
        """Drop a write its caller gave up on, unless the thread has taken it up."""
        with self._lock:
            if item.state == QUEUED:
                item.state = DROPPED
                return True
            return False

    def close(self) -> None:
        """Refuse new writes, let the queued ones commit, then stop (blocks)."""
        self.stop()
        self._thread.join()

    def stop(self) -> None:
        """Refuse new writes; the thread commits the queued ones, then ends (no wait)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)

    # -- the thread ------------------------------------------------------------------

    def _main(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                if self._delivering is not None:  # see DELIVERY_WAIT
                    self._delivering.wait(DELIVERY_WAIT)
                    self._delivering = None
                first = self._queue.get()
                batch = [first]
                # This thread alone takes from the queue: not empty, get_nowait succeeds
                # (no queue.Empty raised and caught on every lone write's way in).
                while len(batch) < MAX_GROUP and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                group: list[WaitingWrite] = []
                with self._lock:  # taken up: from here on the write commits or fails
                    for item in batch:
                        if isinstance(item, WaitingWrite) and item.state == QUEUED:
                            item.state = TAKEN
                            group.append(item)
                stop = _STOP in batch  # (a write compares by identity)
                if group and self._store_closed is not None and self._store_closed():
                    # The sync store under a wrap() front was closed: its engine, disposed,
                    # would quietly open a new pool for this thread.
                    self._delivering = _resolve(
                        group, StoreClosedError(f"store {self._where} is closed")
                    )
                elif len(group) == 1 and group[0].op.hot and self._alone is not None:
                    self._run_alone(group[0])
                elif group:
                    conn = self._connection(conn)
                    self._commit_group(conn, group)
                # Not kept until the next write arrives: the finished group's results
                # (states of any size) and its callers' event loops (each loop's waker
                # holds a descriptor, core/loopwake).
                del first, batch, group, item
                if stop and self._queue.empty():
                    return
        finally:
            if conn is not None:
                conn.close()

    def _connection(self, conn: Connection | None) -> Connection:
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect()
            conn.execution_options(**{WRITE: True})
        return conn

    def _run_alone(self, item: WaitingWrite) -> None:
        """A lone hot write: the sync store's own hot path, on this thread's connection.

        Nothing to share a commit with, so none of the group's machinery: a create is
        one guarded ``INSERT`` (or a ``BEGIN IMMEDIATE`` transaction on the bare driver),
        as in the sync API, with half the Python work of a group of one.
        """
        try:
            item.value = self._alone(item.op)  # type: ignore[misc]
            self.commits += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            item.error = typed(exc, self._where, self.driver_error)
        if item.waker is not None:  # the caller waits for this alone: straight to its loop
            item.waker.post((item,), None)
        else:
            _resolve([item], None)

    def _commit_group(self, conn: Connection, group: list[WaitingWrite]) -> None:
        # No fork while this thread holds the write lock (see forkgate): a child would
        # inherit SQLite's in-process lock state with it held.
        with GATE:
            self._commit_group_gated(conn, group)

    def _commit_group_gated(self, conn: Connection, group: list[WaitingWrite]) -> None:
        try:
            transaction = conn.begin()  # BEGIN IMMEDIATE on SQLite (the engine's begin event)
        except BaseException as exc:  # noqa: BLE001 - every caller gets it
            _resolve(group, typed(exc, self._where, self.driver_error))
            return
        try:
            keep = self._run_group(conn, group)
            if keep:
                transaction.commit()
                self.commits += 1
            else:
                transaction.rollback()
        except BaseException as exc:  # noqa: BLE001 - the commit failed: nothing is kept
            error = typed(exc, self._where, self.driver_error)
            _rollback_quietly(transaction, self.driver_error)
            self._delivering = _resolve(group, error)
            return
        self._delivering = _resolve(group, None)

    #: The bare driver's exception class (translated like SQLAlchemy's).
    driver_error: type[BaseException] = sqlite3.Error

    def _run_group(self, conn: Connection, group: list[WaitingWrite]) -> bool:
        """Run the group in the open transaction (:func:`run_group`); whether to commit."""
        driver = conn.connection.driver_connection
        return run_group(
            conn,
            group,
            sql=driver.execute,
            hot=DriverConnection(driver, self._where) if self._hot else None,
            in_transaction=lambda: driver.in_transaction,
            where=self._where,
            driver_error=sqlite3.Error,
            bulk=functools.partial(write_creates, driver=driver),
        )


def _rollback_quietly(transaction: Any, driver_error: type[BaseException]) -> None:
    try:
        # Even an inactive one (its COMMIT failed): until rolled back, it stays the
        # connection's transaction and the next begin() is refused.
        transaction.rollback()
    except (SQLAlchemyError, driver_error):
        pass  # the connection is invalidated and replaced on the next group


def _resolve(group: list[WaitingWrite], error: BaseException | None) -> threading.Event | None:
    """Hand the group's outcomes to their event loops; an event set once all are handed.

    The event (``None`` when every caller is woken in one turn of its loop) is what the
    writer waits on before it takes up the next group: see :data:`DELIVERY_WAIT`.
    """
    loops: dict[Any, list[WaitingWrite]] = {}
    for item in group:
        if error is not None:
            item.error = error
        loops.setdefault(item.get_loop(), []).append(item)
    delivered = None
    if len(loops) == 1 and len(group) > WAKE_SLICE:
        delivered = threading.Event()
    for loop, items in loops.items():
        done = None if delivered is None else delivered.set
        waker = items[0].waker  # (one per loop)
        if loop.is_closed():  # nobody is waiting any more
            delivered = None
        elif waker is not None:
            waker.post(items, done)
        else:
            try:
                loop.call_soon_threadsafe(wake, items, 0, done)
            except RuntimeError:  # closed meanwhile
                delivered = None
    return delivered
