"""Serial writes (``CheckpointStore.run(serial=True)``): one turn, one connection, shared commits.

Writes that many threads of a process send at once (LangGraph's pool threads) take turns
on a lock here rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms
between tries. Hot ones run on one driver connection that no thread owns
(:meth:`PinnedConnections.shared`): in WAL mode a connection's page cache survives only
its own commits, so each write on its own thread's connection began by reading its pages
again.

And a hot write that finds others queued when its turn comes commits them with its own:
it takes every hot write waiting at that moment and runs them in one ``BEGIN IMMEDIATE``
transaction, each in a savepoint of its own (:func:`breakpilot_store.core.group.run_group`,
as the async store's writer does: one that fails is rolled back alone). Each caller
returns once the commit that holds its write is done, as when it commits alone. A write
that finds nobody waiting is one transaction, as before: the queue only forms when the
disk is slower than the writers, and then a group costs one fsync instead of one each.

A write that would commit alone *defers* when the writes keep overlapping: if, lately,
most commits saw another write arrive while they ran (:attr:`SerialWrites.overlap`), a
write that finds the turn free and nobody queued waits for the next write to arrive and
lead a group of both, for at most about one group's time (:attr:`SerialWrites.group_seconds`)
before it commits alone. That wait is what the next write would otherwise spend waiting
for this one's commit before its own could begin, so the next write is never later for
it, and the two cost one fsync instead of two. LangGraph's pool is the case: a thread
freed by a step's ``put`` picks up a later task's ``put_writes`` at once, while the next
step's ``put`` is still being woken and encoded; deferred, the two share every commit
(benchmarks/OPTIMISATIONS.md, LangGraph round 4). A lone writer never overlaps, so it
never waits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..core.group import DELIVERED, QUEUED, TAKEN, Pending, run_group, typed
from ..core.operations import Operation
from .fastpath import DriverTransaction, PinnedConnections

T = TypeVar("T")

#: Weight of the newest observation in the running averages below.
AVERAGE_WEIGHT = 1 / 8
#: A group's time (seconds) assumed until groups have been timed.
FIRST_GROUP_SECONDS = 0.0005


class _RollBack(Exception):  # noqa: N818 - a signal, not an error
    """Ends the group's transaction with a rollback: it kept nothing."""


class SerialWrites:
    """The turn of ``serial`` writes of one store, and their queue.

    Args:
        pins: The store's hot-path connections (``None``: an in-memory database, whose
            writes take their turn on a Core connection, one by one).
        where: How errors name the database.
        writing: The store's per-thread mark of a write open on another connection
            than the thread's own (set here while a group commits).
    """

    def __init__(
        self, pins: PinnedConnections | None, where: str, writing: threading.local
    ) -> None:
        self._pins = pins
        self._where = where
        self._writing = writing
        self._start()

    def _start(self) -> None:
        self._turn = threading.Lock()
        self._queue_lock = threading.Lock()
        # Signalled (under the queue lock) when a group's outcomes are set.
        self._delivered = threading.Condition(self._queue_lock)
        self._queue: list[Pending] = []
        self._deferring = 0  # writes waiting in _defer
        self._arrivals = 0  # writes that found another running or queued, since the last commit
        #: Running average (0 to 1) of whether a write arrived while a group ran.
        self.overlap = 0.0
        #: Running average of a group's time, ``BEGIN`` to the end of ``COMMIT`` (seconds).
        self.group_seconds = FIRST_GROUP_SECONDS

    def run(self, op: Operation[T], alone: Callable[[Operation[T]], T]) -> T:
        """Run a write in its turn: a hot one in a group, any other with ``alone(op)``."""
        pins = self._pins
        if not op.hot or pins is None:
            with self._turn:
                return alone(op)  # (its transaction marks the thread: see the store)
        item = Pending(op)
        with self._queue_lock:
            queue = self._queue
            queue.append(item)
            if self._turn.locked() or len(queue) > 1:
                self._arrivals += 1  # (a group runs, or another write waits: overlap)
            elif self.overlap > 0.5:
                self._defer(item)
        self._take_turn(item)
        try:
            # Not delivered yet: no turn before this one took it, so it is still queued.
            if item.state != DELIVERED:
                # The group's writes run on the shared connection: one made from
                # inside them, on this thread, is refused (the store's _refuse_nested).
                self._writing.open = True
                try:
                    self._commit(pins)
                finally:
                    self._writing.open = False
        finally:
            self._turn.release()
        if item.error is not None:
            raise item.error
        return item.value  # type: ignore[no-any-return]

    def _take_turn(self, item: Pending) -> None:
        """Wait for the turn; interrupted while ``item`` is still queued, withdraw it.

        An exception (``KeyboardInterrupt``, a signal handler's) that lands while the
        write waits leaves nothing behind: a write no group has taken is taken out of
        the queue, so it is not written. One a group has taken commits or fails with it.
        """
        try:
            self._turn.acquire()
        except BaseException:
            with self._queue_lock:
                self._withdraw(item)
            raise

    def _withdraw(self, item: Pending) -> None:
        """Take ``item`` out of the queue if no group has taken it (queue lock held)."""
        if item.state == QUEUED:
            self._queue.remove(item)

    def _defer(self, item: Pending) -> None:
        """Wait (queue lock held) for the next write's group to take ``item``, or time out.

        Returns when a group has taken ``item`` (then the turn brings its outcome) or
        after about one group's time; a wait that times out counts as a commit that saw
        no overlap, so a pattern that ends stops costing waits.
        """
        deadline = time.perf_counter() + self.group_seconds
        self._deferring += 1
        try:
            while item.state == QUEUED:
                left = deadline - time.perf_counter()
                if left <= 0:
                    self.overlap -= self.overlap * AVERAGE_WEIGHT
                    return
                self._delivered.wait(left)
        except BaseException:
            self._withdraw(item)  # interrupted: as in _take_turn
            raise
        finally:
            self._deferring -= 1

    def _commit(self, pins: PinnedConnections) -> None:
        """Take the queued writes as a group, run them in one transaction; set each outcome.

        Every write taken is delivered, with its value or its error, whatever happens
        here: taking the group, the connection (the store closed meanwhile), the
        transaction.
        """
        group: list[Pending] = []
        transaction = None
        committed = False
        began = time.perf_counter()
        try:
            with self._queue_lock:
                group, self._queue = self._queue, []
                for one in group:
                    one.state = TAKEN
            pin = pins.shared()
            driver = pin.connection
            transaction = DriverTransaction(pin, self._where, True)
            with transaction as conn:
                keep = run_group(
                    conn,
                    group,
                    sql=driver.execute,
                    hot=conn,
                    in_transaction=lambda: driver.in_transaction,
                    where=self._where,
                    driver_error=sqlite3.Error,
                )
                if not keep:
                    raise _RollBack
            committed = True
        except _RollBack:
            pass  # each write of the group has its error
        except BaseException as exc:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing kept
            if transaction is not None:
                transaction.abandon()  # (an interrupt as __exit__ began left it open)
            error = typed(exc, self._where, sqlite3.Error)
            for item in group:
                if item.error is None:
                    item.error = error
        finally:
            with self._queue_lock:
                for item in group:
                    item.state = DELIVERED
                if self._deferring:
                    self._delivered.notify_all()
        if committed:
            self._timed(time.perf_counter() - began)

    def _timed(self, seconds: float) -> None:
        """Fold a committed group's time, and whether writes overlapped it, into the averages."""
        self.group_seconds += (seconds - self.group_seconds) * AVERAGE_WEIGHT
        with self._queue_lock:
            overlapped, self._arrivals = self._arrivals > 0, 0
            self.overlap += (overlapped - self.overlap) * AVERAGE_WEIGHT

    def forget_after_fork(self) -> None:
        """In a forked child: a turn held, or writes queued, by the parent's threads are gone."""
        self._start()
