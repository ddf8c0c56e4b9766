"""``AsyncCheckpointStore``: the store for asyncio code, with group commit.

Every public method of :class:`~breakpilot_store.store.CheckpointStore` is here as a
coroutine of the same name (the streaming ones as async iterators), running the same
operations (:mod:`breakpilot_store.core.operations`) without ever blocking the event loop
on I/O or on a lock:

* SQLite: writes go to one writer thread that commits every write waiting at that
  moment in one transaction, each in its own savepoint
  (:mod:`breakpilot_store.sqlite.writer`); reads run on a few reader threads of the
  store's own, each with its pinned connection (the sync store's hot path).
* PostgreSQL: writes go to the same kind of writer thread, on a sync psycopg connection
  (a lone create is the sync hot path's one statement); reads use psycopg 3's async
  connections through SQLAlchemy's asyncio extension (:mod:`breakpilot_store.postgres.aio`).
  Imports and whole-session exports, which use the driver's bulk paths (``COPY``), run
  the sync store's code on a worker thread.

Where the CPU work runs (decided by measurement, benchmarks/OPTIMISATIONS.md, the async
API): argument checks and the encoding of a create's values run on the calling task,
when the call is made (~5 µs for the 1 KB benchmark state, ~0.8 ms per MB): that keeps
the sync API's snapshot rule (what ``data`` holds at the call is what is stored), and
moving them to a thread would not free the loop anyway, since encoding holds the GIL
(the loop would wait for the GIL instead). Everything after the encoding,
SQL, binds, rows and the result's construction, runs on the writer thread, on both
backends; the loop only queues the write and wakes its caller (in slices of
:data:`~breakpilot_store.core.group.WAKE_SLICE` callers per turn).

Cancellation: a write whose caller is cancelled before the writer took it up is not
written; once taken up it commits (or fails) as a whole with its group, and the
cancellation waits for that (a few milliseconds) before it proceeds. Either way the
caller gets ``CancelledError``, nothing is ever partly written, and the caller's next
read (``get_latest()``) shows which happened.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import threading
import time
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from .checkpoint import Checkpoint
from .core import checks, copying
from .core import operations as ops
from .core.operations import Attempt, Operation
from .core.repository import SessionInfo
from .engine import resolve_url, sqlite_path
from .errors import ReadOnlyStoreError, StoreBusyError, StoreClosedError
from .store import CheckpointStore
from .uncopyable import Uncopyable

T = TypeVar("T")

#: Reader threads of a SQLite store (each keeps one pooled connection pinned).
READERS = 4

_END = object()


class _Reading:
    """An import of ``store`` reading an async iterable (while ``active``).

    Set in the context of each item's read (:func:`_next`), so tasks the iterable
    starts carry it too: a write to that store from any of them, while the import is
    open, would wait for the import, which waits for the item (a write awaited through
    ``gather`` or a task of its own hung for ever when only the reading task was
    checked). Once the import ends, ``active`` is false and such tasks write freely.
    """

    __slots__ = ("store", "active")

    def __init__(self, store: Any) -> None:
        self.store = store
        self.active = True

    def blocks(self, store: Any) -> bool:
        return self.active and self.store is store


_READING: contextvars.ContextVar[_Reading | None] = contextvars.ContextVar(
    "breakpilot_store_import_reading", default=None
)

#: The store whose open this task waited for (:meth:`AsyncCheckpointStore._ready`): a
#: call made before ``close()`` that was still waiting for the open goes on while the
#: close waits for it, its later steps (a second ``_ready``) included.
_ADMITTED: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "breakpilot_store_admitted", default=None
)

#: How long (seconds) ``close()`` waits for the calls made before it that were waiting
#: for the open to take their turn (a loop of another thread that never runs again
#: must not hold the close up for ever).
ADMITTED_WAIT = 10.0


class AsyncCheckpointStore(Uncopyable):
    """A checkpoint store for asyncio code, over the same database as the sync API.

    The constructor does no I/O: the store opens (creating or upgrading the schema under
    the same lock as :class:`CheckpointStore`) on :meth:`open`, on ``async with``, or on
    first use. What it writes, sync stores, the CLI and other processes read identically
    at the same time, and the other way round.

    On PostgreSQL the store belongs to the event loop that first uses it (its async
    connections do); on SQLite it works from any loop.

    Args:
        url: A filesystem path, a SQLAlchemy URL, or ``None`` for the default store.
        **options: The keyword arguments of :class:`CheckpointStore` (``durability``,
            ``busy_timeout``, ``migrate``, ``readonly`` and backend options).
    """

    def __init__(self, url: str | os.PathLike[str] | URL | None = None, **options: Any) -> None:
        self._url = url
        self._options = options
        self._store: CheckpointStore | None = None
        self._owns = True
        self._closed = False
        # Done when the first close() has finished: a close() made meanwhile (from any
        # loop) waits for it, as a second close() of a sync store would block.
        self._close_done: concurrent.futures.Future[None] = concurrent.futures.Future()
        #: The writer and reader threads are being shut (later than ``_closed``: see
        #: :meth:`close`).
        self._shut = False
        self._open_lock = threading.Lock()
        # The open (on a thread of its own), its outcome once done, and who waits for it
        # per event loop: a SQLite store serves any loop (a second loop awaiting a first
        # loop's future while the store opened got RuntimeError, "attached to a
        # different loop").
        self._opening: _Opening | None = None
        # Stops the writer's thread if this front is collected unclosed (_stop_with_me).
        self._stopper: weakref.finalize | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer: Any = None  # GroupWriter (SQLite) or AsyncPostgres
        self._postgres: Any = None
        self._memory = False
        #: Opened and not closed: the every-call path skips :meth:`_ready`.
        self._live = False
        #: Callers still waiting for the open to be delivered to them: while any is,
        #: no later call may skip the wait and overtake them (concurrent calls keep
        #: their order: ``gather(create(a), create(b))`` gives ``a`` the lower seq).
        self._waiting = 0
        _FRONTS.add(self)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's writer and reader threads (they do not exist here).

        An inherited store's write went to the parent's writer thread's queue, which no
        thread reads in the child: it hung forever. The next call opens again (the sync
        store under it has dropped the parent's connections, see ``forking``). What the
        parent's threads and async engine hold is kept referenced, never closed: it is
        the parent's (closing a PostgreSQL connection tells the server to end it).
        """
        if self._closed:
            return
        self._live = False  # the create's fast path must not reach the parent's writer
        if self._stopper is not None:
            self._stopper.detach()  # (the parent's writer: its lock may be held for good)
            self._stopper = None
        _INHERITED.append((self._writer, self._readers, self._postgres))
        if self._memory:
            # The child's copy of the database is its own (the sync store keeps it);
            # only the one thread that ran everything on it is new.
            self._readers = ThreadPoolExecutor(1, thread_name_prefix="breakpilot-store-memory")
            return
        self._opening = None
        self._writer = self._readers = self._postgres = None

    @classmethod
    def wrap(cls, store: CheckpointStore) -> AsyncCheckpointStore:
        """An async front over an open sync store; closing it leaves ``store`` open."""
        front = cls(store.url)
        front._store = store
        front._owns = False
        return front

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def sync_store(self) -> CheckpointStore:
        """The :class:`CheckpointStore` this front runs on, opened (blocking) if need be.

        For the sync half of an API that offers both (the framework integrations): sync
        callers may block, and share the database, schema and options with this store.
        """
        if self._closed:
            raise StoreClosedError(f"store {self._url!s} is closed")
        return self._sync_store()

    def _sync_store(self) -> CheckpointStore:
        # (The open's thread comes here even once close() began: the calls made
        # before it wait for this open.)
        with self._open_lock:
            if self._store is None:
                self._store = CheckpointStore(self._url, **self._options)
            return self._store

    @property
    def url(self) -> URL:
        """The database URL (the store opens, blocking, if it has not yet)."""
        return self.sync_store.url

    @property
    def engine(self) -> Engine:
        """The sync store's SQLAlchemy ``Engine`` (opened, blocking, if need be)."""
        return self.sync_store.engine

    @property
    def readonly(self) -> bool:
        """Whether the store was opened read-only."""
        return bool(self._options.get("readonly", False)) or (
            self._store is not None and self._store.readonly
        )

    async def open(self) -> AsyncCheckpointStore:
        """Open the database now (it opens on first use otherwise); returns ``self``."""
        await self._ready()
        return self

    async def _ready(self) -> CheckpointStore:
        """The sync store, with this front's threads or async engine started."""
        if self._closed and (self._shut or _ADMITTED.get() is not self):
            raise StoreClosedError(f"store {self._url!s} is closed")
        opening = self._opening
        if (
            opening is not None
            and opening.done
            and opening.error is None
            and (not self._waiting or _ADMITTED.get() is self)
        ):
            # (A caller that has had its turn at the open does not queue again behind
            # those still waiting for theirs: its next step, a second _ready on the
            # way to the writer, would come after theirs and reorder its writes.)
            return self._store  # type: ignore[return-value]  # the every-call path
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        with self._open_lock:
            opening = self._opening
            if opening is None:
                # Opened on a thread of its own that finishes whoever waits: a caller
                # cancelled meanwhile leaves the open to complete for the others.
                opening = self._opening = _Opening()
                _in_thread(self._start, functools.partial(self._open_ended, opening))
            opening.join(loop, waiter)
        self._waiting += 1
        _ADMITTED.set(self)  # (the task's own context: see _ADMITTED)
        try:
            await waiter
        finally:
            if self._closed:
                # close() waits for this caller: count it out only once the step it
                # resumes in has submitted its work (the step runs on until it awaits
                # that), so that a caller on another thread's loop cannot be counted
                # out and then find the writer shut.
                asyncio.get_running_loop().call_soon(self._count_out)
            else:
                self._waiting -= 1
        if self._store is None or self._shut:  # closed meanwhile
            raise StoreClosedError(f"store {self._url!s} is closed")
        self._live = not self._closed and not self._waiting
        return self._store

    def _count_out(self) -> None:
        self._waiting -= 1

    def _open_ended(self, opening: _Opening, error: BaseException | None) -> None:
        """On the open's thread: hand its outcome to every loop with callers waiting.

        One callback per loop wakes that loop's callers in the order they came
        (:func:`_deliver`). Not the thread's future's own callbacks, one per caller: a
        caller that came after the open finished added its callback to a finished
        future, which ran it at once, while the thread was still calling the earlier
        callers' (the GIL passes between them): the later caller was woken first and
        its create took the lower seq (found by the differential test, reproduced by
        slowing the thread's callbacks down).
        """
        with self._open_lock:
            opening.done = True
            opening.error = error
            if error is not None and self._opening is opening:
                # A failed open is not remembered: the server may be back (a terminated
                # connection, a restart), and the next call tries again, as a new sync
                # store would. Remembered, every later call raised the first error.
                self._opening = None
            loops = list(opening.waiters)
        for loop in loops:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nobody waits there
                loop.call_soon_threadsafe(_deliver, self._open_lock, opening, loop)

    def _start(self) -> None:
        url = resolve_url(self._url) if self._store is None else self._store.url
        if url.get_backend_name() == "sqlite" and sqlite_path(url) is None:
            # An in-memory database exists on the one thread that made it (SQLAlchemy
            # pools one connection per thread): the store is opened, and everything
            # runs, on one thread of its own. No group commit: there is no fsync to share.
            self._readers = ThreadPoolExecutor(1, thread_name_prefix="breakpilot-store-memory")
            self._memory = True
            self._readers.submit(self._sync_store).result()
            return
        store = self._sync_store()
        if store.engine.dialect.name == "postgresql":
            from .postgres.aio import AsyncPostgres

            self._postgres = AsyncPostgres(
                store.engine, store._where, store._execute_hot_write, lambda: store.closed
            )
            if not store.readonly:
                self._writer = self._postgres.writer  # the same writer thread as SQLite's
                self._stop_with_me(self._writer)
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="breakpilot-store-bulk")
            return
        from .sqlite.writer import GroupWriter

        if not store.readonly:
            self._writer = GroupWriter(
                store.engine,
                store._where,
                hot=True,
                alone=store._execute_hot_write,
                closed=lambda: store.closed,
            )
            self._stop_with_me(self._writer)
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="breakpilot-store-read")

    def _stop_with_me(self, writer: Any) -> None:
        """Stop ``writer``'s thread if this front is dropped without :meth:`close`.

        The thread holds the writer and the sync store, not this front: a store opened
        and forgotten (one per request, say) left a thread and its connection behind
        for good, ten for ten. (Its reader threads end with their executor.)
        """
        self._stopper = weakref.finalize(self, writer.stop)
        self._stopper.atexit = False  # (daemon threads: nothing to do at exit)

    async def close(self) -> None:
        """Let the calls already made finish their writes, then close.

        Writes already submitted commit. So do those of calls made before this one
        that were still waiting for the store to open (a first use, or :meth:`open`
        in progress): they go on once it is open. A call made afterwards raises
        :class:`~breakpilot_store.errors.StoreClosedError`. A store given to
        :meth:`wrap` stays open.
        """
        if self._closed:
            await asyncio.wrap_future(self._close_done)
            return
        self._closed = True
        try:
            await self._close()
        finally:
            self._close_done.set_result(None)

    async def _close(self) -> None:
        self._live = False
        opening = self._opening
        if opening is not None and not opening.done:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            with self._open_lock:
                opening.join(loop, waiter)
            with contextlib.suppress(BaseException):
                await waiter
        # The callers woken by the open submit their work in the step they resume in
        # (on their own loops: this one's included, hence the sleeps).
        deadline = time.monotonic() + ADMITTED_WAIT
        while self._waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        self._shut = True
        if self._postgres is not None:
            await self._postgres.close()
        writer, readers, store = self._writer, self._readers, self._store
        if self._memory and store is not None and self._owns:
            await self._on_thread(store.close)  # on the thread its connection belongs to
        await asyncio.to_thread(_shut, writer, readers, store if self._owns else None)

    async def __aenter__(self) -> AsyncCheckpointStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncCheckpointStore({self._url!s})"

    # -- running operations ------------------------------------------------------------

    async def run(
        self,
        operation: Callable[[Connection], T],
        *,
        write: bool = False,
        hot: bool = False,
        attempt: Attempt | None = None,
        serial: bool = False,
    ) -> T:
        """Run ``operation(conn)`` in one transaction, off the event loop.

        The async twin of :meth:`CheckpointStore.run`, with the same contract. A write
        runs in its own savepoint of a transaction shared with the other writes waiting
        at that moment (group commit): it must not commit or roll back the connection,
        and an exception from it rolls back its savepoint only. It runs on the store's
        writer thread (a sync connection on both backends): use the ``Connection`` it
        is given, not the bare driver connection under it.
        ``hot`` as for :meth:`CheckpointStore.run` (a hot write on a SQLite file runs on
        the writer's bare driver connection, in the group's transaction). ``attempt`` is
        accepted as there and not sent: here a write shares its round trips with the
        others of its group, and ``operation`` runs. ``serial`` is accepted as there and
        changes nothing: every write here already queues for the one writer thread and
        its one connection.
        """
        return await self._execute(ops.custom(operation, write=write, hot=hot, attempt=attempt))

    async def _execute(self, op: Operation[T]) -> T:
        store = await self._ready()
        if op.write:
            self._refuse_inside_import("a write to", "write before or after the import")
            if store.readonly:
                raise ReadOnlyStoreError(f"store {store._where} was opened read-only")
            if self._memory:
                return await self._on_thread(store._execute, op)
            return await self._submit(op)
        if self._postgres is not None:
            return await self._postgres.read(op)
        return await self._on_thread(store._execute, op)

    def _refuse_inside_import(self, what: str, instead: str) -> None:
        """Refuse a call made from inside this store's import's async iterable.

        It would wait for that import, which waits for the iterable's next item.

        Raises:
            StoreBusyError: The calling task was started, or runs, in such a read.
        """
        reading = _READING.get()
        if reading is not None and reading.blocks(self):
            raise StoreBusyError(
                f"{what} store {self._url!s} from inside the async iterable of its own "
                f"import_checkpoints would wait for that import, which waits for the "
                f"iterable: {instead}"
            )

    def _submit(self, op: Operation[T]) -> asyncio.Future[T]:
        """Queue a write on the group-commit writer; the caller awaits its outcome.

        A plain function returning the write itself, a future (what cancelling it does:
        :class:`~breakpilot_store.core.group.WaitingWrite`): no frame of its own on
        the every-create path. On PostgreSQL the caller's loop must be the store's.
        """
        if self._postgres is not None:
            self._postgres.check_loop()
        return self._writer.submit(op, asyncio.get_running_loop())

    async def _on_thread(self, function: Callable[..., T], *args: Any) -> T:
        if self._memory:  # its one thread may be running that import
            self._refuse_inside_import("a call on in-memory", "call it before or after the import")
        return await asyncio.get_running_loop().run_in_executor(self._readers, function, *args)

    async def _call(self, function: Callable[[CheckpointStore], T]) -> T:
        """Run a sync store method on a worker thread (bulk paths, WAL checkpoint)."""
        store = await self._ready()
        return await self._on_thread(function, store)

    async def _stream(self, make: Callable[[CheckpointStore], Iterator[T]]) -> AsyncIterator[T]:
        """Drive a sync store generator on a thread of its own, one piece per await.

        One thread for the whole stream: the generator's read transaction stays on the
        connection and thread that began it. Closing the async iterator closes it.
        """
        store = await self._ready()
        if self._memory:  # the database's own thread: gathered there
            for piece in await self._call(lambda s: list(make(s))):
                yield piece
            return
        loop = asyncio.get_running_loop()
        # Shut down without waiting (not ``with``: its exit joins the thread on the
        # loop's own thread, which a second cancel while closing reached, blocking the
        # loop until the read in flight ended): the queued close still runs, then the
        # thread ends.
        thread = ThreadPoolExecutor(1, thread_name_prefix="breakpilot-store-stream")
        try:
            pieces = await loop.run_in_executor(thread, make, store)
            try:
                while (piece := await loop.run_in_executor(thread, next, pieces, _END)) is not _END:
                    yield piece
            finally:
                await asyncio.shield(loop.run_in_executor(thread, pieces.close))
        finally:
            thread.shutdown(wait=False)

    # -- writing -----------------------------------------------------------------------

    async def create(
        self,
        session_id: str,
        name: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        compress_after: int | None = None,
        max_checkpoints: int | None = None,
    ) -> Checkpoint:
        """Store a new checkpoint and apply the retention rule (see :meth:`CheckpointStore.create`).

        Returns once the checkpoint's transaction has committed (durable at the store's
        ``durability``); concurrent creates share that commit.
        """
        session_id, compress_after, max_checkpoints = ops.check_create(
            session_id, compress_after, max_checkpoints
        )
        return await self._create(session_id, name, data, metadata, compress_after, max_checkpoints)

    def _create(
        self,
        session_id: str,
        name: str,
        data: Any,
        metadata: Any,
        compress_after: int | None,
        max_checkpoints: int | None,
        fence: Any = None,
    ) -> Awaitable[Checkpoint]:
        """:meth:`create` for a caller that has checked the session id and the limits.

        ``fence``: a lease holder's (see :mod:`breakpilot_store.aio_leasing`). A plain
        function returning what the caller awaits: on every agent's step (the store
        open, a writer, not inside an import's own async iterable) the write goes
        straight to the writer, with no coroutine of its own in flight (at 1,000 agents
        each one more object in every young garbage collection, benchmarks/
        OPTIMISATIONS.md, the async API, third round). The values are encoded now.
        """
        if self._live and self._writer is not None and _READING.get() is None:
            return self._submit(
                _create_op(
                    self._store,
                    session_id,
                    name,
                    data,
                    metadata,
                    compress_after,
                    max_checkpoints,
                    fence,
                )
            )
        return self._create_slowly(
            session_id, name, data, metadata, compress_after, max_checkpoints, fence
        )

    async def _create_slowly(
        self,
        session_id: str,
        name: str,
        data: Any,
        metadata: Any,
        compress_after: int | None,
        max_checkpoints: int | None,
        fence: Any,
    ) -> Checkpoint:
        """:meth:`_create` while the store opens, or by way of :meth:`_execute`'s checks."""
        store = await self._ready()
        op = _create_op(
            store, session_id, name, data, metadata, compress_after, max_checkpoints, fence
        )
        if self._writer is not None and self._live and _READING.get() is None:
            return await self._submit(op)
        return await self._execute(op)

    async def compress(
        self,
        session_id: str,
        *,
        compress_after: int | None = 50,
        max_checkpoints: int | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> list[str]:
        """Apply the retention rule now (see :meth:`CheckpointStore.compress`)."""
        return await self._execute(
            ops.compress(session_id, compress_after, max_checkpoints, dry_run, force)
        )

    async def clear(self, session_id: str, *, force: bool = False, fence: Any = None) -> int:
        """Delete every checkpoint of a session; numbering continues. How many.

        ``force`` and ``fence`` as for :meth:`CheckpointStore.clear`.
        """
        return await self._execute(ops.clear(session_id, fence, force))

    async def delete_session(self, session_id: str, *, force: bool = False) -> int:
        """Delete a session, its checkpoints and its counter (see the sync store)."""
        store = await self._ready()
        return await self._execute(ops.delete_session(session_id, store._where, force))

    async def import_checkpoints(
        self,
        session_id: str,
        entries: Iterable[Any] | AsyncIterable[Any],
        *,
        on_entry: Any = None,
        min_last_seq: int = 0,
        force: bool = False,
        fence: Any = None,
    ) -> int:
        """Import checkpoints in the seed's export form, all or nothing.

        The rules are :meth:`CheckpointStore.import_checkpoints`'s. ``entries`` may be an
        iterable or an async iterable; either is read while the import's transaction is
        open (an async iterable's items are awaited on this event loop), so it must not
        wait for a write to this store: a write to this store from the iterable itself
        raises :class:`StoreBusyError` rather than waiting forever.
        """
        store = await self._ready()
        if isinstance(entries, AsyncIterable):
            caller = asyncio.current_task()
            entries = _blocking_iter(entries, asyncio.get_running_loop(), self, caller)
        try:
            return await self._import(
                store, session_id, entries, on_entry, min_last_seq, force, fence
            )
        except asyncio.CancelledError:
            raise  # (an in-memory store's import may still be reading it: left to it)
        except BaseException:
            # As the sync import closes a generator it was given: a failed import's
            # iterable (and what it holds: a lock, a file) is released now, not when the
            # cyclic collector finds the error's traceback that refers to it. For an
            # async iterable this closes its reader, which ends the import's mark and
            # closes the iterable on this loop.
            close = getattr(entries, "close", None)
            if close is not None and isinstance(entries, Iterator):
                with contextlib.suppress(Exception):  # still running: it ends itself
                    close()
            raise

    async def _import(
        self,
        store: CheckpointStore,
        session_id: str,
        entries: Iterable[Any],
        on_entry: Any,
        min_last_seq: int,
        force: bool,
        fence: Any,
    ) -> int:
        if self._postgres is not None:
            # The bulk path uses the driver directly (COPY): the sync code, on a thread.
            def run(s: CheckpointStore) -> int:
                return s.import_checkpoints(
                    session_id,
                    entries,
                    on_entry=on_entry,
                    min_last_seq=min_last_seq,
                    force=force,
                    fence=fence,
                )

            # As a group's write: a cancelled caller waits for the outcome (it returned at
            # once, and the import committed later, behind the caller's next read).
            work = asyncio.ensure_future(self._call(run))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                with contextlib.suppress(BaseException):
                    await work
                raise
        op = ops.import_checkpoints(
            session_id,
            entries,
            on_entry=on_entry,
            min_last_seq=min_last_seq,
            threads_ok=store._threads_ok,
            fence=fence,
            force=force,
        )
        return await self._execute(op)

    async def prune_sessions(
        self,
        idle_for: timedelta,
        *,
        prefix: str | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> list[tuple[str, int]]:
        """Delete every session idle for ``idle_for`` (see the sync store)."""
        return await self._execute(ops.prune_sessions(idle_for, prefix, dry_run, force))

    async def wal_checkpoint(self, mode: str = "TRUNCATE") -> tuple[int, int, int]:
        """Run SQLite's WAL checkpoint on a worker thread (see the sync store)."""
        return await self._call(lambda s: s.wal_checkpoint(mode))

    async def copy_session(self, source_session_id: str, new_session_id: str) -> int:
        """:meth:`CheckpointStore.copy_session`, as the same operation through :meth:`run`."""
        return await self.run(
            functools.partial(
                copying.copy_session, src=source_session_id, dst=new_session_id, now=checks.now()
            ),
            write=True,
        )

    async def fork_session(self, checkpoint_id: str, new_session_id: str) -> int:
        """:meth:`CheckpointStore.fork_session`, as the same operation through :meth:`run`."""
        return await self.run(
            functools.partial(
                copying.fork_session,
                checkpoint_id=checkpoint_id,
                dst=new_session_id,
                now=checks.now(),
            ),
            write=True,
        )

    # -- reading -----------------------------------------------------------------------

    async def get(self, checkpoint_id: str) -> Checkpoint | None:
        """Return the checkpoint with this id (``"session:seq"``), or ``None``."""
        op = ops.get(checkpoint_id)
        return None if op is None else await self._execute(op)

    async def get_latest(self, session_id: str, name: str | None = None) -> Checkpoint | None:
        """Return the session's highest-seq checkpoint (with ``name``, if given)."""
        return await self._execute(ops.get_latest(session_id, name))

    async def list_checkpoints(
        self,
        session_id: str,
        *,
        name: str | None = None,
        since: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[Checkpoint]:
        """Return a session's checkpoints in seq order (see the sync store).

        On PostgreSQL on a worker thread with the sync driver, not through the async
        connections: their rows are built, and their values decoded, on the event
        loop's thread (``run_sync``), where a list of 21 states of 0.5 MB held the loop
        for ~57 ms at a stretch (~17 ms on a thread, which gives the GIL back between
        rows).
        """
        op = ops.list_checkpoints(
            session_id,
            name=name,
            since=since,
            start=start,
            end=end,
            newest_first=newest_first,
            limit=limit,
        )
        if self._postgres is not None:
            store = await self._ready()
            return await self._on_thread(store._execute, op)
        return await self._execute(op)

    async def iter_checkpoints(self, session_id: str) -> AsyncIterator[Checkpoint]:
        """Stream a session's checkpoints in seq order, in one read transaction."""
        ops.count(session_id)  # the argument check, before the first await
        async for checkpoint in self._stream(lambda s: s.iter_checkpoints(session_id)):
            yield checkpoint

    async def count(self, session_id: str) -> int:
        """Return how many checkpoints the session holds (0 if unknown)."""
        return await self._execute(ops.count(session_id))

    async def summary(self, session_id: str) -> dict[str, Any]:
        """Return the seed's summary dict for a session (see the sync store)."""
        return await self._execute(ops.summary(session_id))

    async def export_chunks(
        self, session_id: str, *, on_batch: Callable[[int], object] | None = None
    ) -> AsyncIterator[str]:
        """Stream a session's export (the seed's JSON) piece by piece, one snapshot.

        ``on_batch`` is called on the stream's worker thread.
        """
        ops.count(session_id)
        async for piece in self._stream(lambda s: s.export_chunks(session_id, on_batch=on_batch)):
            yield piece

    async def export_bytes(
        self, session_id: str, *, on_batch: Callable[[int], object] | None = None
    ) -> AsyncIterator[memoryview]:
        """:meth:`export_chunks` as UTF-8 pieces, for a binary file or pipe."""
        ops.count(session_id)
        async for piece in self._stream(lambda s: s.export_bytes(session_id, on_batch=on_batch)):
            yield piece

    async def export_json(self, session_id: str) -> str:
        """Return a session's checkpoints as the seed's export JSON (indent 2)."""
        ops.count(session_id)
        return await self._call(lambda s: s.export_json(session_id))

    async def list_sessions(
        self, *, prefix: str | None = None, idle_for: Any = None
    ) -> list[SessionInfo]:
        """Return every session with its counts and last activity, ordered by id."""
        return await self._execute(ops.list_sessions(prefix, idle_for))

    async def session_info(self, session_id: str) -> SessionInfo | None:
        """Return one session's :class:`SessionInfo`, or ``None``."""
        return await self._execute(ops.session_info(session_id))

    async def execute_read(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Run a read-only SQL query in one read transaction."""
        return await self._execute(ops.execute_read(sql, params))

    # -- observability -----------------------------------------------------------------

    @property
    def commits(self) -> int:
        """Group transactions committed by this store's writer so far."""
        writer = self._postgres if self._postgres is not None else self._writer
        return 0 if writer is None else writer.commits


#: Async stores alive in this process, and what a forked child inherited from them.
_FRONTS: weakref.WeakSet[AsyncCheckpointStore] = weakref.WeakSet()
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    for front in list(_FRONTS):
        front._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _create_op(
    store: Any,
    session_id: str,
    name: Any,
    data: Any,
    metadata: Any,
    compress_after: int | None,
    max_checkpoints: int | None,
    fence: Any,
) -> Operation[Checkpoint]:
    """A create's operation (its values encoded now) for ``store``'s backend."""
    return ops.create(
        session_id,
        name,
        data,
        metadata,
        compress_after,
        max_checkpoints,
        row_lock=store._row_lock,
        fence=fence,
    )


def _in_thread(function: Callable[[], None], ended: Callable[[BaseException | None], None]) -> None:
    """Run ``function`` on a new daemon thread, then ``ended(error)`` there."""

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            ended(exc)
        else:
            ended(None)

    threading.Thread(target=run, name="breakpilot-store-open", daemon=True).start()


class _Opening:
    """One attempt at opening a front: its outcome, and its callers per event loop."""

    __slots__ = ("done", "error", "waiters")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        #: Per loop, the futures of the callers not woken yet, in the order they came.
        self.waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}

    def join(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
        """Queue a caller (the front's open lock held); it is woken after those before it."""
        waiting = self.waiters.get(loop)
        if waiting is not None:
            waiting.append(waiter)  # this loop's callers are still to be woken: in turn
        elif not self.done:
            self.waiters[loop] = [waiter]
        else:
            # This loop's callers were woken already: their steps are scheduled, and
            # this one's comes after them.
            loop.call_soon(_settle, waiter, self.error)


def _deliver(lock: threading.Lock, opening: _Opening, loop: asyncio.AbstractEventLoop) -> None:
    """On ``loop``: wake its callers waiting for ``opening``, in the order they came."""
    with lock:
        waiting = opening.waiters.pop(loop, [])
    for waiter in waiting:
        _settle(waiter, opening.error)


def _settle(waiter: asyncio.Future[None], error: BaseException | None) -> None:
    if waiter.done():  # its caller was cancelled
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(None)


def _shut(writer: Any, readers: ThreadPoolExecutor | None, store: CheckpointStore | None) -> None:
    if writer is not None and hasattr(writer, "close"):
        writer.close()
    if readers is not None:
        readers.shutdown(wait=True)
    if store is not None:
        store.close()


async def _quietly(close: Callable[[], Awaitable[Any]]) -> None:
    # Its errors were the iterable's to raise while it was read; closing it is tidying.
    with contextlib.suppress(Exception):
        await close()


async def _next(iterator: AsyncIterator[Any], mark: _Reading, caller: Any) -> Any:
    # A task of its own (run_coroutine_threadsafe): the mark is in its context, and in
    # that of every task it starts.
    _READING.set(mark)
    if caller is not None and caller.cancelling():
        # The import's caller was cancelled: read no more, so the import fails as a
        # whole at once (rolled back) instead of reading the rest of a slow iterable
        # while the cancellation waits for it.
        raise asyncio.CancelledError
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


def _blocking_iter(
    entries: AsyncIterable[Any],
    loop: asyncio.AbstractEventLoop,
    store: AsyncCheckpointStore,
    caller: Any,
) -> Iterator[Any]:
    """Read an async iterable from a worker thread, awaiting each item on ``loop``.

    When the import ends (done, failed or dropped), the iterable is closed on ``loop``
    (not waited for: this may run on the loop's own thread), as a sync import closes a
    generator: a lock it holds is not kept until the garbage collector comes by.
    """
    iterator = entries.__aiter__()
    mark = _Reading(store)
    try:
        while (
            item := asyncio.run_coroutine_threadsafe(_next(iterator, mark, caller), loop).result()
        ) is not _END:
            yield item
    finally:
        mark.active = False
        close = getattr(iterator, "aclose", None)
        if close is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                asyncio.run_coroutine_threadsafe(_quietly(close), loop)
