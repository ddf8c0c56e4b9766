"""The async store on PostgreSQL: psycopg 3's async connections, group commit in a task.

SQLAlchemy's asyncio extension drives psycopg's ``AsyncConnection``; the store's
operations (the same functions the sync store runs, :mod:`breakpilot_store.core.operations`)
run through ``AsyncConnection.run_sync``, which lets their sync SQLAlchemy calls wait on
the event loop instead of a thread.

Writes go to one writer task: it runs every write waiting at that moment in one
transaction (:func:`breakpilot_store.core.group.run_group`) and commits once. On
PostgreSQL a create costs three round trips (lock the session's row, read its top seq,
insert) besides the commit, so the plain creates at the head of a group are written
together in three statements for the whole group
(:mod:`breakpilot_store.core.group_create`); the other writes run one by one, each
in a savepoint. Measured with 100 concurrent agents on the (loaded) benchmark machine:
one writer, creates one by one, ~70 creates/s; with the group's creates together, ~310/s.
Several writers on connections of their own (tried with 4 and 8, a session's writes kept
on one of them) were slower than one (~220/s and ~150/s): smaller groups.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..core.group import DROPPED, QUEUED, TAKEN, Pending, outcome, run_group, typed, wake
from ..core.group_create import write_creates
from ..core.operations import Operation
from ..errors import StoreClosedError, StoreUnavailableError
from .engine import async_twin

#: Most writes one transaction takes.
MAX_GROUP = 1000


class AsyncPostgres:
    """Reads and group-committed writes over an ``AsyncEngine`` (bound to one event loop).

    Args:
        engine: The sync store's engine; its asyncio twin gets the same settings.
        where: How errors name the database.
    """

    def __init__(self, engine: Engine, where: str) -> None:
        self._engine = async_twin(engine)
        self._where = where
        self._pending: collections.deque[Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one it belongs to
        #: Transactions committed by the writer (a test counts them).
        self.commits = 0

    async def read(self, op: Operation[Any]) -> Any:
        """Run a read operation in a read transaction of its own."""
        self._check_loop()
        try:
            async with self._engine.connect() as conn, conn.begin():
                return await conn.run_sync(op.run)
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise typed(exc, self._where, psycopg.Error) from exc

    async def write(self, op: Operation[Any]) -> Any:
        """Queue a write for the next group; its result once the group committed.

        A caller cancelled before the writer took its write up leaves nothing written;
        once taken up, the write commits (or fails) with its group, and the cancellation
        waits for that before it proceeds.
        """
        if self._closed:
            raise StoreClosedError(f"store {self._where} is closed")
        self._check_loop()
        item = Pending(op, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name="breakpilot-store-writer")
        self._wake.set()
        return await outcome(item, _drop)

    def _check_loop(self) -> None:
        """Refuse a call from another event loop than the first one's (typed, at once).

        The writer task and the pooled async connections live on the first loop; from
        another (a second ``asyncio.run``), a write waited for a task that never runs
        again and a read for a connection of a closed loop: both hung forever.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is None:
            self._loop = loop
            return
        raise StoreUnavailableError(
            f"store {self._where} belongs to the event loop that first used it; on "
            "PostgreSQL make one AsyncCheckpointStore per event loop"
        )

    async def close(self) -> None:
        """Refuse new writes, let the queued ones commit, then close the connections."""
        self._closed = True
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            # Closed from another loop (the first one has ended): its writer task can
            # never run again and nothing of it is awaited; the pooled connections are
            # closed from here.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._engine.dispose(), 10)
            return
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
        await self._engine.dispose()

    async def _main(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                group = []
                while self._pending and len(group) < MAX_GROUP:
                    item = self._pending.popleft()
                    if item.state == QUEUED:  # not dropped by a cancelled caller
                        item.state = TAKEN
                        group.append(item)
                if group:
                    await self._commit_group(group)
            if self._closed:
                return

    async def _commit_group(self, group: list[Pending]) -> None:
        error: BaseException | None = None
        cancelled: asyncio.CancelledError | None = None
        try:
            async with self._engine.connect() as conn:
                transaction = await conn.begin()
                keep = await conn.run_sync(
                    lambda sync_conn: run_group(
                        sync_conn,
                        group,
                        sql=sync_conn.exec_driver_sql,
                        hot=None,
                        in_transaction=lambda: True,  # a failed statement needs ROLLBACK TO
                        where=self._where,
                        driver_error=psycopg.Error,
                        bulk=write_creates,
                    )
                )
                if keep:
                    await transaction.commit()
                    self.commits += 1
                else:
                    await transaction.rollback()
        except BaseException as exc:  # noqa: BLE001 - every caller of the group gets it
            error = typed(exc, self._where, psycopg.Error)
            if isinstance(exc, asyncio.CancelledError):
                cancelled = exc
                error = StoreClosedError(f"store {self._where}: the writer was cancelled")
        if error is not None:
            for item in group:
                item.error = error
        wake(group)  # the first slice now, the others on the next turns of the loop
        if cancelled is not None:
            raise cancelled


def _drop(item: Pending) -> bool:
    """Drop a write still queued (the writer runs on the same loop: no lock needed)."""
    if item.state == QUEUED:
        item.state = DROPPED
        return True
    return False
