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
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from ..core.group import DELIVERED, Pending, run_group, typed
from ..core.operations import Operation
from .fastpath import DriverTransaction, PinnedConnections

T = TypeVar("T")


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
        self._turn = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[Pending] = []

    def run(self, op: Operation[T], alone: Callable[[Operation[T]], T]) -> T:
        """Run a write in its turn: a hot one in a group, any other with ``alone(op)``."""
        pins = self._pins
        if not op.hot or pins is None:
            with self._turn:
                return alone(op)  # (its transaction marks the thread: see the store)
        item = Pending(op)
        with self._queue_lock:
            self._queue.append(item)
        with self._turn:
            # Not delivered yet: no turn before this one took it, so it is still queued.
            if item.state != DELIVERED:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                # The group's writes run on the shared connection: one made from
                # inside them, on this thread, is refused (the store's _refuse_nested).
                self._writing.open = True
                try:
                    self._commit(pins, group)
                finally:
                    self._writing.open = False
        if item.error is not None:
            raise item.error
        return item.value  # type: ignore[no-any-return]

    def _commit(self, pins: PinnedConnections, group: list[Pending]) -> None:
        """Run ``group`` in one transaction on the shared connection; set each outcome."""
        pin = pins.shared()
        driver = pin.connection
        transaction = DriverTransaction(pin, self._where, True)
        try:
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
        except _RollBack:
            pass  # each write of the group has its error
        except BaseException as exc:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing kept
            transaction.abandon()  # (an interrupt as __exit__ began left it open)
            error = typed(exc, self._where, sqlite3.Error)
            for item in group:
                if item.error is None:
                    item.error = error
        finally:
            for item in group:
                item.state = DELIVERED

    def forget_after_fork(self) -> None:
        """In a forked child: a turn held, or writes queued, by the parent's threads are gone."""
        self._turn = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue = []
