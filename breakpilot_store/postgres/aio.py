"""The async store on PostgreSQL: group commit on a writer thread, reads on psycopg async.

Writes go to one writer thread (the SQLite writer's, :class:`PostgresGroupWriter`) with
a sync psycopg connection: it runs every write waiting at that moment in one transaction
(:func:`breakpilot_store.core.group.run_group`) and commits once. The plain creates at
the head of a group are written together in three statements for the whole group (lock
every session's row in id order, read every top seq, one ``executemany``:
:mod:`breakpilot_store.core.group_create`); the other writes run one by one, each in a
savepoint. A write alone in its queue takes the sync store's hot path on the thread's
own connection: a create is one prepared statement (``PG_CREATE``), one round trip.

Why a thread and not a task on the loop: through SQLAlchemy's asyncio extension
(``AsyncConnection.run_sync``, the first design) every statement's Python work, a
group's binds and rows included, ran ON the event loop's thread, a few milliseconds
per group of 100 creates: event-loop lag by construction (3.7-4.8 ms p99 at 100
agents). On the thread, the loop only queues the write and wakes its caller; the
thread holds the GIL only between the driver's network waits. Measured in the same
runs: see benchmarks/OPTIMISATIONS.md (the async API).

Reads (one statement each, no group to share) run on psycopg's async connections through
SQLAlchemy's asyncio extension, on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..core.group import WaitingWrite, run_group, typed
from ..core.group_create import write_creates
from ..core.operations import Operation
from ..errors import StoreUnavailableError
from ..sqlite.writer import GroupWriter
from .engine import async_twin


class PostgresGroupWriter(GroupWriter):
    """The group-commit writer thread on a PostgreSQL connection of the engine's pool."""

    driver_error = psycopg.Error

    def _run_group(self, conn: Connection, group: list[WaitingWrite]) -> bool:
        return run_group(
            conn,
            group,
            sql=conn.exec_driver_sql,
            hot=None,
            in_transaction=lambda: True,  # a failed statement needs ROLLBACK TO
            where=self._where,
            driver_error=psycopg.Error,
            bulk=write_creates,
        )


class AsyncPostgres:
    """Reads over an ``AsyncEngine`` (bound to one event loop); writes on a writer thread.

    Args:
        engine: The sync store's engine; its asyncio twin gets the same settings.
        where: How errors name the database.
        alone: The sync store's hot path for a write alone in its queue.
        closed: Whether that sync store was closed (see ``GroupWriter``).
    """

    def __init__(self, engine: Engine, where: str, alone: Any, closed: Any = None) -> None:
        self._engine = async_twin(engine)
        self._where = where
        #: The writer thread; the async store submits its writes here.
        self.writer = PostgresGroupWriter(engine, where, hot=False, alone=alone, closed=closed)
        self._loop: asyncio.AbstractEventLoop | None = None  # the one it belongs to

    @property
    def commits(self) -> int:
        """Transactions committed by the writer (a test counts them)."""
        return self.writer.commits

    async def read(self, op: Operation[Any]) -> Any:
        """Run a read operation in a read transaction of its own."""
        self.check_loop()
        try:
            async with self._engine.connect() as conn, conn.begin():
                return await conn.run_sync(op.run)
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise typed(exc, self._where, psycopg.Error) from exc

    def check_loop(self) -> None:
        """Refuse a call from another event loop than the first one's (typed, at once).

        The pooled async connections of the reads live on the first loop; from another
        (a second ``asyncio.run``) a read waited for a connection of a closed loop and
        hung. Writes (on the writer thread) are refused the same way, so that a store
        keeps one rule: one ``AsyncCheckpointStore`` per event loop.
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
        """Refuse new writes, let the queued ones commit, then close the connections.

        Works from any event loop: the writer is a thread; the first loop's pooled
        connections are closed from here if that loop has ended.
        """
        await asyncio.to_thread(self.writer.close)
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._engine.dispose(), 10)
            return
        await self._engine.dispose()
