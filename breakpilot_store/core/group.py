"""Group commit: many writes in one transaction, each in a savepoint of its own.

The async store's writer thread (on either backend) takes every write
waiting at that moment and runs them here, inside one transaction that it then commits
once (one fsync on SQLite). Each write runs in its own ``SAVEPOINT``: one that fails
(a refused value, a conflict, a retention error) is rolled back to its savepoint and
fails alone; the writes before and after it are kept. A write alone in its group needs
no savepoint: the transaction is its own.

The same function runs on both backends, on the writer thread
(:class:`~breakpilot_store.sqlite.writer.GroupWriter`) with a sync SQLAlchemy
``Connection``: SQLite's, or PostgreSQL's over sync psycopg.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..errors import BreakpilotStoreError
from ..translate import translate, translate_driver
from .operations import Operation

#: The savepoint each write of a group runs in (one at a time, so one name).
SAVEPOINT = "bp_group"


#: A pending write's states: waiting in the queue, taken up by the writer (it will
#: commit or fail as a whole), dropped by its cancelled caller, outcome handed out.
QUEUED, TAKEN, DROPPED, DELIVERED = range(4)


class Pending:
    """One submitted write and, once its group has run, its outcome.

    ``error`` is set when the write failed (the database holds none of it); otherwise
    ``value`` is the operation's result, valid once the group's transaction commits.
    ``state`` is one of ``QUEUED``, ``TAKEN``, ``DROPPED``, ``DELIVERED`` (changed under
    the writer's lock, if it has one). A write submitted from an event loop is a
    :class:`WaitingWrite`, which is also the future its caller awaits.
    """

    __slots__ = ("op", "value", "error", "state")

    def __init__(self, op: Operation[Any]) -> None:
        self.op = op
        self.value: Any = None
        self.error: BaseException | None = None
        self.state = QUEUED


class WaitingWrite(asyncio.Future):  # type: ignore[type-arg]
    """A write submitted from an event loop: a :class:`Pending` that is its own future.

    The caller awaits this object itself: no separate future, and no coroutine around
    it to handle cancellation (with a thousand agents in flight, every object a
    waiting create holds is traversed by every young garbage collection, whose pauses
    are the event loop's worst lag: benchmarks/OPTIMISATIONS.md, the async API, fourth
    round). Cancellation is :meth:`cancel`'s.

    ``waker`` is the loop's :class:`~breakpilot_store.core.loopwake.LoopWaker`
    (``None``: wake it with ``call_soon_threadsafe``); ``writer`` the writer it was
    submitted to (what :meth:`cancel` asks to drop it).
    """

    __slots__ = ("op", "value", "error", "state", "waker", "writer")

    def __init__(self, op: Operation[Any], loop: Any, waker: Any, writer: Any) -> None:
        super().__init__(loop=loop)
        self.op = op
        self.value: Any = None
        self.error: BaseException | None = None
        self.state = QUEUED
        self.waker = waker
        self.writer = writer

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the wait: what cancelling a task awaiting this write does.

        A write still queued is dropped (nothing is written) and this future is
        cancelled: the task sees ``CancelledError`` at once. One the writer has taken
        up commits or fails as a whole; then this returns ``False`` and the future
        stays pending, so asyncio marks the task to be cancelled and throws
        ``CancelledError`` into it when the outcome arrives: its next read sees the
        outcome, and no lock is held any more.
        """
        if self.state == QUEUED:
            self.writer.drop(self)  # (fails if the writer took it up meanwhile)
        if self.state == TAKEN:
            return False
        return super().cancel(msg)


#: Callers woken per turn of the event loop when a group's results are handed out:
#: waking a thousand at once would keep the loop busy for tens of milliseconds (every
#: woken task runs its next step in the same turn), and every other task, timers
#: included, would wait that long.
WAKE_SLICE = 16


def wake(
    items: Sequence[WaitingWrite], start: int = 0, done: Callable[[], object] | None = None
) -> None:
    """Hand their outcomes to the callers waiting on the event loop, a slice per turn.

    Runs on the loop (posted by a writer thread through the loop's
    :class:`~breakpilot_store.core.loopwake.LoopWaker`, or ``call_soon_threadsafe``);
    schedules itself for the next slice. ``done`` is called after the last slice.
    """
    end = min(start + WAKE_SLICE, len(items))
    for item in items[start:end]:
        item.state = DELIVERED
        if item.done():  # cancelled while queued
            continue
        if item.error is not None:
            item.set_exception(item.error)
        else:
            item.set_result(item.value)
    if end < len(items):
        items[end].get_loop().call_soon(wake, items, end, done)
    elif done is not None:
        done()


def typed(
    exc: BaseException, where: str, driver_error: type[BaseException] | tuple
) -> BaseException:
    """The exception a caller sees for ``exc``: driver errors become typed errors."""
    if isinstance(exc, BreakpilotStoreError):
        return exc
    if isinstance(exc, SQLAlchemyError):
        typed_exc = translate(exc, where)
    elif isinstance(exc, driver_error):
        typed_exc = translate_driver(exc, where)  # type: ignore[arg-type]
    else:
        return exc
    typed_exc.__cause__ = exc
    return typed_exc


def run_group(
    conn: Any,
    group: Sequence[Pending],
    *,
    sql: Callable[[str], object],
    hot: Any,
    in_transaction: Callable[[], bool],
    where: str,
    driver_error: type[BaseException] | tuple,
    bulk: Callable[[Any, Sequence[Pending]], list[Pending]] | None = None,
) -> bool:
    """Run every write of ``group`` in the transaction open on ``conn``.

    Args:
        conn: A SQLAlchemy ``Connection`` in a write transaction.
        group: The writes, in the order they were submitted (which keeps ids in the
            order of the calls).
        sql: Runs one statement of transaction control (``SAVEPOINT`` ...) on the
            connection, bypassing SQLAlchemy's bookkeeping of nested transactions.
        hot: What a ``hot`` operation runs on (SQLite's bare driver connection over the
            same transaction), or ``None`` for ``conn``.
        in_transaction: Whether the transaction is still open (SQLite ends it on its own
            after some errors, such as a full disk).
        where: How errors name the database.
        driver_error: The bare driver's exception class(es), translated like
            SQLAlchemy's.

        bulk: Optionally writes some of the group's writes together (a group's plain
            creates, :mod:`breakpilot_store.core.group_create`) and returns the others;
            it runs in a savepoint of its own, and if it fails every write runs one by one.

    Returns:
        Whether the transaction may be committed: ``False`` when it was lost, in which
        case every write of the group has its error set.
    """
    if bulk is not None and len(group) > 1:
        sql(f"SAVEPOINT {SAVEPOINT}")
        try:
            rest = bulk(conn, group)
        except BaseException:  # noqa: BLE001 - retried one by one, which names the culprit
            sql(f"ROLLBACK TO {SAVEPOINT}")
            rest = list(group)
            for item in group:
                item.value = None
        sql(f"RELEASE {SAVEPOINT}")
        if len(rest) < len(group):
            return _one_by_one(conn, group, rest, sql, hot, in_transaction, where, driver_error)
    if len(group) == 1:
        item = group[0]
        try:
            item.value = item.op.run(hot if item.op.hot and hot is not None else conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            item.error = typed(exc, where, driver_error)
            return False  # nothing to keep: the caller rolls the transaction back
        return True
    return _one_by_one(conn, group, group, sql, hot, in_transaction, where, driver_error)


def _one_by_one(
    conn: Any,
    group: Sequence[Pending],
    todo: Sequence[Pending],
    sql: Callable[[str], object],
    hot: Any,
    in_transaction: Callable[[], bool],
    where: str,
    driver_error: type[BaseException] | tuple,
) -> bool:
    """Run each write of ``todo`` (part of ``group``) in a savepoint of its own."""
    for item in todo:
        sql(f"SAVEPOINT {SAVEPOINT}")
        try:
            item.value = item.op.run(hot if item.op.hot and hot is not None else conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            item.error = typed(exc, where, driver_error)
            try:
                sql(f"ROLLBACK TO {SAVEPOINT}")
            except BaseException as lost:  # noqa: BLE001
                # The transaction itself is gone: nothing of the group is kept.
                _fail_rest(group, item, typed(lost, where, driver_error))
                return False
            if not in_transaction():
                _fail_rest(group, item, item.error)
                return False
        sql(f"RELEASE {SAVEPOINT}")
    return True


def _fail_rest(group: Sequence[Pending], failed: Pending, error: BaseException) -> None:
    """The transaction was lost at ``failed``: every other write of the group fails too."""
    for item in group:
        if item is not failed:
            item.value = None
            item.error = error
