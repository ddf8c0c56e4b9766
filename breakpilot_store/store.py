"""``CheckpointStore``: owns the engine; each public method is exactly one transaction."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from . import forking
from .checkpoint import Checkpoint
from .codec import check_key
from .core import checks, copying
from .core import operations as ops
from .core import repository as repo
from .core.operations import Attempt, Operation
from .core.repository import SessionInfo
from .core.transfer import (
    EXPORT_BATCH,
    export_pieces,
    gc_paused,
    reporting,
    text_chunk,
    text_pieces,
)
from .engine import WRITE, Durability, release_interrupted, resolve_url, sqlite_path
from .errors import (
    BreakpilotStoreError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreClosedError,
)
from .forkgate import GATE
from .migrate import describe
from .opening import open_engine
from .sqlite.fastpath import DriverTransaction, PinnedConnections, append
from .sqlite.maintenance import wal_checkpoint
from .sqlite.serial import SerialWrites
from .translate import translate, translate_driver
from .uncopyable import Uncopyable

T = TypeVar("T")

#: How many import entries are checked against the database and inserted at a time.
IMPORT_BATCH = ops.IMPORT_BATCH

# Kept under their old names: the manager (and code written against it) imports them here.
_now = checks.now
_positive_int = checks.positive_int
aware = checks.aware


def _abandon(transaction: Any) -> None:
    """End a hot-path transaction that an interrupt kept ``__exit__`` from ending.

    (``self._hot`` is a :class:`DriverTransaction` on SQLite files, which can be left
    open that way; the Core transaction it is elsewhere ends itself.)
    """
    abandon = getattr(transaction, "abandon", None)
    if abandon is not None:
        abandon()


class _WriteMark(threading.local):
    """Per thread: a write of the store open on another connection than the thread's own.

    That is, a Core write transaction or a serial group being committed. A class
    default, so reading it is one attribute lookup (no exception for a thread that
    never set it).
    """

    open = False


class CheckpointStore(Uncopyable):
    """A database of checkpoints for many sessions (SQLite file or PostgreSQL).

    Opening a store creates or upgrades the schema (under a lock, so many agents may
    start at once) unless ``migrate=False``. Every public method runs in exactly one
    transaction; SQLite writes start with ``BEGIN IMMEDIATE``.

    Args:
        url: A filesystem path, a SQLAlchemy URL, or ``None`` for the default store
            (``$BREAKPILOT_STORE_URL``, else ``checkpoints.db`` in the user data dir).
        durability: SQLite only: ``"full"`` (synchronous=FULL, survives power loss) or
            ``"normal"`` (synchronous=NORMAL in WAL: faster, a power cut may lose the
            last commits but never corrupts the file).
        busy_timeout: Seconds to wait for another connection's lock before raising
            :class:`~breakpilot_store.errors.StoreBusyError`.
        migrate: Create/upgrade the schema if needed; with ``False`` only check it.
        readonly: Open read-only (SQLite ``mode=ro``); writes raise
            :class:`~breakpilot_store.errors.ReadOnlyStoreError`.
        **engine_options: Backend options (PostgreSQL pool sizing, see README).

    Raises:
        SchemaVersionError: The database was migrated by newer code (both revisions named).
        DatabaseError: The database cannot be opened (not a database, unreachable, ...).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | URL | None = None,
        *,
        durability: Durability = "full",
        busy_timeout: float = 30.0,
        migrate: bool = True,
        readonly: bool = False,
        **engine_options: Any,
    ) -> None:
        self.url: URL = resolve_url(url)
        self.readonly = readonly
        self._where = describe(self.url)
        self._closed = False
        self._pins: PinnedConnections | None = None
        with GATE:  # no fork while SQLite opens and migrates (see forkgate)
            self._engine: Engine = open_engine(
                self.url,
                self._where,
                durability=durability,
                busy_timeout=busy_timeout,
                migrate=migrate,
                readonly=readonly,
                engine_options=engine_options,
            )
        # PostgreSQL writers lock the session's row before reading its counter.
        self._row_lock = self._engine.dialect.name == "postgresql"
        self._pg: Any = None
        if sqlite_path(self.url) is not None:
            # SQLite files take the hot path (see fastpath.py); in-memory databases and
            # other backends go through SQLAlchemy Core connections.
            self._pins = PinnedConnections(self._engine, self._where)
        elif self._row_lock:
            # PostgreSQL: create, get and get_latest in one round trip each.
            from .postgres.fastpath import PostgresHotPath

            self._pg = PostgresHotPath(self._engine, self._where)
        # run(serial=True)'s turn and queue (SQLite's: PostgreSQL's row locks order writers).
        # Per thread: whether a write of this store on a connection other than the
        # thread's own hot-path one is open on it: a Core write transaction, or a
        # serial group being committed (see _refuse_nested).
        self._writing = _WriteMark()
        self._serial = (
            None if self._row_lock else SerialWrites(self._pins, self._where, self._writing)
        )
        # Whether a connection may pass to an import's writer thread (see pipeline):
        # not an in-memory SQLite database, which lives on the thread that made it.
        self._threads_ok = self._row_lock or self._pins is not None
        forking.track(self)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The store's SQLAlchemy ``Engine``."""
        return self._engine

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards.

        From any thread, also while other threads are inside calls of this store:
        those calls finish, and the connection each is using is closed when it is done
        with it; calls that begin afterwards raise ``StoreClosedError``.
        """
        if not self._closed:
            self._closed = True
            with GATE:
                if self._pins is not None:
                    self._pins.close()
                if self._pg is not None:
                    self._pg.close()
                self._engine.dispose()
            forking.untrack(self)

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointStore({self._where!r})"

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        """One transaction; driver errors leave it as typed errors."""
        if self._closed:
            raise StoreClosedError(f"store {self._where} is closed")
        if write and self.readonly:
            raise ReadOnlyStoreError(f"store {self._where} was opened read-only")
        marked = write and self._pins is not None
        if marked:
            self._refuse_nested()
        GATE.enter()  # no fork while this thread is inside a transaction (see forkgate)
        try:
            if marked:
                self._writing.open = True
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise translate(exc, self._where) from exc
        except self._engine.dialect.dbapi.Error as exc:  # the bulk paths' driver calls
            raise translate_driver(exc, self._where) from exc
        except BaseException as exc:
            interrupt = release_interrupted(exc)
            if interrupt is not None and interrupt is not exc:
                raise interrupt from None
            raise
        finally:
            GATE.exit()
            if marked:
                self._writing.open = False

    def _refuse_nested(self) -> None:
        """Refuse a write that would wait for a write this thread has open (SQLite files).

        SQLite has one writer per file. A write made while this thread holds another of
        the store's write transactions open on a different connection (from a
        ``run(op, write=True)`` operation, the iterable of ``import_checkpoints``, an
        operation of a ``serial`` group) waits for that transaction, which waits for it:
        ``busy_timeout`` and then a misleading "locked by another connection", or, for
        a ``serial`` write inside another, for ever. It is refused at once instead.
        The hot path's writes check only ``self._writing.open`` (and raise
        :meth:`_nested_error`): they run on the thread's own connection, so a create
        inside a hot ``run`` joins its transaction there.
        """
        if self._writing.open or (self._pins is not None and self._pins.writing_here()):
            raise self._nested_error()

    def _nested_error(self) -> StoreBusyError:
        return StoreBusyError(
            f"a write to {self._where} from inside another write of this thread (a "
            "run() operation, the iterable of import_checkpoints, a serial write) "
            "would wait for that write, which waits for it; nothing was written: "
            "write before or after it"
        )

    def run(
        self,
        operation: Callable[[Connection], T],
        *,
        write: bool = False,
        hot: bool = False,
        attempt: Attempt | None = None,
        serial: bool = False,
    ) -> T | None:
        """Run ``operation(conn)`` in one transaction of this store: the extension seam.

        The framework integrations (and any user with tables of their own) write their
        SQL once, as a function of a SQLAlchemy ``Connection`` that never commits, and
        run it here or through :meth:`AsyncCheckpointStore.run` unchanged. A write
        transaction starts with ``BEGIN IMMEDIATE`` on SQLite; driver errors leave as
        typed errors; an exception from ``operation`` rolls the transaction back.

        Args:
            operation: Called once with the transaction's connection; its result is
                returned.
            write: Whether the operation writes (a read-only store refuses it).
            hot: Whether ``operation`` only calls ``conn.execute(statement, params)``
                (Core statements or ``text()``, no expanding parameters; a list of
                parameter dicts runs it for each), reads results with ``fetchone``,
                ``fetchall`` and ``rowcount``, and picks dialect-specific SQL by
                ``conn.dialect.name``.
                On a SQLite file it then runs on the bare driver connection of the
                store's hot path (``BEGIN IMMEDIATE`` ... ``COMMIT`` without SQLAlchemy's
                per-transaction machinery; a read must be a single statement there,
                which is its own transaction). Elsewhere it gets a ``Connection``.
            attempt: For a write on PostgreSQL: ``(statements, accept)``, a list of
                ``(statement, params)`` that the store's hot path sends first as one
                transaction in one round trip (a pipeline: ``BEGIN``, the statements,
                ``COMMIT``), and ``accept(rows)`` which gets each statement's rows and
                says whether they did the whole write. Then ``run`` returns ``None``
                and ``operation`` is not called; else it runs as usual (so the
                statements must write nothing that ``operation`` would not write
                too). Ignored where there is no such hot path (SQLite: ``operation``
                runs).
            serial: For a write on SQLite: wait for this store's other ``serial``
                writes in this process on a lock, not in SQLite's busy handler (which
                sleeps 1, 2, 5, 10... ms between tries), and with ``hot`` on a file
                run on the one driver connection those writes share, not on the
                calling thread's, in one commit with the hot ``serial`` writes queued
                at that moment (each in a savepoint: one that fails fails alone; see
                :mod:`breakpilot_store.sqlite.serial`). For writes that arrive from
                many threads at once (LangGraph's pool threads): in WAL mode a
                connection's page cache survives only its own commits, so each write
                on its own thread's connection began by reading its pages again.
                ``operation`` must not write through the store (the turn is not
                re-entrant): such a write raises ``StoreBusyError`` at once.
                Ignored on PostgreSQL, whose row locks order writers.
        """
        op = ops.custom(operation, write=write, hot=hot, attempt=attempt)
        if attempt is not None and self._pg is not None:
            self._check_open(write=True)
            statements, accept = attempt
            done = self._pg.transaction(statements)
            if done is not None and accept(done):
                return None
        if serial and write and self._serial is not None:
            self._check_open(write=True)
            if self._pins is not None:
                self._refuse_nested()
            return self._serial.run(op, self._execute)
        return self._execute(op)

    def _execute(self, op: Operation[T]) -> T:
        """Run one operation in a transaction of its own (the hot path's, if it can)."""
        if op.read is not None and self._pg is not None:
            self._check_open(write=False)
            return self._pg.read(*op.read)  # type: ignore[no-any-return]
        if op.hot:
            hot = self._hot(op.write)
            try:
                with hot as conn:
                    return op.run(conn)
            except BaseException:
                _abandon(hot)
                raise
        with self._transaction(op.write) as conn:
            return op.run(conn)

    def _execute_hot_write(self, op: Operation[T]) -> T:
        """Run a hot write alone, as this thread's sync calls would.

        For the async writer's lone writes: on SQLite a create whose counter this
        thread's connection knows is one guarded ``INSERT``, anything else one ``BEGIN
        IMMEDIATE`` transaction on the bare driver; on PostgreSQL a create is one
        statement on this thread's own connection (as :meth:`create`'s), anything else
        its transaction.
        """
        args = op.create
        seq = None
        if args is not None and self._pins is not None and not self._closed and not self.readonly:
            seq = append(self._pins.get(), self._where, *args.values())
        elif args is not None and self._pg is not None:
            fence = args.fence
            if fence is None or not fence.renewal_due():  # a due renewal: the transaction
                self._check_open(write=True)
                seq = self._pg.append(
                    args.session_id,
                    args.name,
                    args.now,
                    args.data.encode(),
                    args.metadata,
                    args.compress_after,
                    args.max_checkpoints,
                    None if fence is None else fence.token,
                )
        if seq is not None:
            return ops.created(  # type: ignore[return-value]  # a create's result
                args.session_id,  # type: ignore[union-attr]
                seq,
                args.name,  # type: ignore[union-attr]
                args.now,  # type: ignore[union-attr]
                args.data,  # type: ignore[union-attr]
                args.metadata,  # type: ignore[union-attr]
            )
        return self._execute(op)

    def _hot(self, write: bool) -> Any:
        """The hot path's transaction: the bare driver on SQLite files, else Core.

        A context manager yielding something with ``execute(statement, params)`` that
        the repository functions accept. A hot read is one statement, its own implicit
        transaction.
        """
        if self._pins is None:
            return self._transaction(write)
        self._check_open(write)
        if write and self._writing.open:
            raise self._nested_error()
        return DriverTransaction(self._pins.get(), self._where, write)

    def _check_open(self, write: bool) -> None:
        """Refuse a call on a closed store, and a write on a read-only one."""
        if self._closed:
            raise StoreClosedError(f"store {self._where} is closed")
        if write and self.readonly:
            raise ReadOnlyStoreError(f"store {self._where} was opened read-only")

    # -- writing -----------------------------------------------------------------------

    def create(
        self,
        session_id: str,
        name: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        compress_after: int | None = None,
        max_checkpoints: int | None = None,
    ) -> Checkpoint:
        """Store a new checkpoint and apply the retention rule, in one transaction.

        The seq is allocated in the same transaction as the insert, so it is gapless and
        unique across processes. If the session then holds more than ``compress_after``
        checkpoints it is compressed, and then capped at ``max_checkpoints`` (see
        :mod:`breakpilot_store.core.retention` for the rule). ``None`` skips either step.

        Args:
            session_id: The session to add to (created on first use).
            name: The checkpoint's name.
            data: The state to store: a JSON-exact dict, stored as a snapshot.
            metadata: Optional JSON-exact dict.
            compress_after: Compress when the session holds more than this many.
            max_checkpoints: Hard cap on the checkpoints the session holds.

        Returns:
            The stored checkpoint (its ``data`` is a copy, not the caller's dict).

        Raises:
            CheckpointTypeError: A wrong type anywhere (the path is named).
            CheckpointValueError: A bad value (empty name, NaN, ...). Nothing is written.
        """
        session_id, compress_after, max_checkpoints = ops.check_create(
            session_id, compress_after, max_checkpoints
        )
        return self._create(session_id, name, data, metadata, compress_after, max_checkpoints)

    def _create(
        self,
        session_id: str,
        name: str,
        data: Any,
        metadata: Any,
        compress_after: int | None,
        max_checkpoints: int | None,
        fence: Any = None,
    ) -> Checkpoint:
        """:meth:`create` for a caller that has checked the session id and the limits.

        The manager checks them once, when it is made; this is every agent's step.
        ``fence`` is a lease holder's (see :mod:`breakpilot_store.leasing`): its token
        must still be current; a holder whose renewal is due takes the full transaction,
        which renews the lease.
        """
        # UTF-8 bytes: the hot paths bind them as they are (SQLite casts them to TEXT,
        # PostgreSQL to JSON); only the full transaction takes the decoded text.
        name, data_utf8, metadata_text = ops.encode_create_utf8(name, data, metadata)
        now = _now()
        seq = None
        renew = fence is not None and fence.renewal_due()
        if self._pins is not None and not self._closed and not self.readonly and not renew:
            if self._writing.open:  # (one attribute read per create)
                raise self._nested_error()
            # One guarded statement when this thread's connection knows the counter.
            seq = append(
                self._pins.get(),
                self._where,
                session_id,
                name,
                now,
                data_utf8,
                metadata_text,
                compress_after,
                max_checkpoints,
                fence,
            )
        elif self._pg is not None and not renew:
            # One statement, unless the retention rule is due or a lease refuses it
            # (the lease is checked again on the session's row once it is locked, see
            # repository.PG_CREATE); as on SQLite, a holder renews in the full
            # create when its renewal is due.
            self._check_open(write=True)
            seq = self._pg.append(
                session_id,
                name,
                now,
                data_utf8,
                metadata_text,
                compress_after,
                max_checkpoints,
                None if fence is None else fence.token,
            )
        if seq is None:
            hot = self._hot(write=True)
            try:
                with hot as conn:
                    seq = repo.create_checkpoint(
                        conn,
                        session_id,
                        name,
                        now,
                        data_utf8.decode(),
                        metadata_text,
                        compress_after=compress_after,
                        max_checkpoints=max_checkpoints,
                        row_lock=self._row_lock,
                        # The hot path's driver connection carries its counter cache.
                        cache=getattr(conn, "counter_cache", None),
                        fence=fence,
                        renew=renew,
                    )
            except BaseException:
                _abandon(hot)
                raise
            if renew:
                fence.renewed()
        # A snapshot: data and metadata decode from the stored text when first read.
        return ops.created(session_id, seq, name, now, data_utf8, metadata_text)

    def copy_session(self, source_session_id: str, new_session_id: str) -> int:
        """Copy every checkpoint of a session into a new session, in one transaction.

        Each copy keeps its seq, name, time, data and metadata, and records where it came
        from in ``origin_id`` (the source id, or the origin the source already had). The
        new session's numbering continues after the source's. A LangGraph thread's
        pending writes go along (see :mod:`breakpilot_store.langgraph`).

        Returns:
            How many checkpoints were copied.

        Raises:
            UnknownSessionError: The source session does not exist.
            CheckpointValueError: ``new_session_id`` exists already (nothing is written).
        """
        return self.run(
            functools.partial(
                copying.copy_session, src=source_session_id, dst=new_session_id, now=_now()
            ),
            write=True,
        )

    def fork_session(self, checkpoint_id: str, new_session_id: str) -> int:
        """Copy a session's history up to and including one checkpoint into a new session.

        As :meth:`copy_session`, for the checkpoints with seq at or below that of
        ``checkpoint_id`` (``"session:seq"``); the new session's next seq follows it.

        Returns:
            How many checkpoints were copied.

        Raises:
            UnknownSessionError: No such checkpoint.
            CheckpointValueError: ``checkpoint_id`` is no id, or ``new_session_id`` exists.
        """
        return self.run(
            functools.partial(
                copying.fork_session, checkpoint_id=checkpoint_id, dst=new_session_id, now=_now()
            ),
            write=True,
        )

    def compress(
        self,
        session_id: str,
        *,
        compress_after: int | None = 50,
        max_checkpoints: int | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> list[str]:
        """Apply the retention rule to a session now, as ``create`` would.

        Refused while another holder leases the session, unless ``force`` (or
        ``dry_run``, which writes nothing).

        Returns:
            The ids of the checkpoints removed (or that would be, with ``dry_run``).

        Raises:
            SessionLeasedError: The session is leased (and ``force`` is not set).
        """
        return self._execute(
            ops.compress(session_id, compress_after, max_checkpoints, dry_run, force)
        )

    def clear(self, session_id: str, *, force: bool = False, fence: Any = None) -> int:
        """Delete every checkpoint of a session; its numbering continues afterwards.

        Args:
            session_id: The session.
            force: Clear even if another holder leases the session (operators).
            fence: A lease holder's fence (its manager passes it; see
                :mod:`breakpilot_store.leasing`).

        Returns:
            How many checkpoints were deleted.

        Raises:
            SessionLeasedError: Another holder leases the session.
            LeaseLostError: ``fence``'s lease was taken over or released.
        """
        return self._execute(ops.clear(session_id, fence, force))

    def delete_session(self, session_id: str, *, force: bool = False) -> int:
        """Delete a session, its checkpoints and its counter.

        Unlike :meth:`clear`, the session's numbering is forgotten: a later checkpoint in
        a session of the same id starts again at seq 1. Its lease row (and fencing
        token) stays: a holder of an old token can never write again.

        Args:
            session_id: The session.
            force: Delete even if another holder leases the session (operators).

        Returns:
            How many checkpoints were deleted.

        Raises:
            UnknownSessionError: There is no such session.
            SessionLeasedError: The session is leased (and ``force`` is not set).
        """
        return self._execute(ops.delete_session(session_id, self._where, force))

    def import_checkpoints(
        self,
        session_id: str,
        entries: Iterable[Any],
        *,
        on_entry: Any = None,
        min_last_seq: int = 0,
        force: bool = False,
        fence: Any = None,
    ) -> int:
        """Import checkpoints in the seed's export form, all or nothing.

        Entries whose id belongs to ``session_id`` keep their seq; an identical
        checkpoint already stored there makes the entry a no-op, a different one raises
        :class:`ImportConflictError`. Entries from other sessions get fresh seqs in
        document order, with their original id kept as ``origin_id`` (importing the
        same one again is a no-op when identical, a conflict when not). The session's
        counter ends at or above every seq it holds. No compression is applied.

        ``entries`` may be any iterable (a list, a generator, or
        :func:`~breakpilot_store.core.document.read_document` of an export file): they are
        read and validated on the calling thread while a second thread writes the
        batches before them (see :mod:`breakpilot_store.core.pipeline`), all inside one
        transaction, so any error leaves the database unchanged.

        Args:
            session_id: The session to import into.
            entries: Dicts of the form ``Checkpoint.to_dict()`` returns.
            on_entry: Optional callable invoked once per entry processed (progress).
            min_last_seq: The session's counter ends at least here, so that a copy of a
                session keeps its numbering even if its newest checkpoints were deleted
                at the source (``breakpilot-store copy`` passes the source's last seq).
            force: Import even if another holder leases the session (operators).
            fence: A lease holder's fence (its manager passes it).

        Returns:
            How many checkpoints were written (no-ops excluded).

        Raises:
            ImportFormatError: A malformed entry (its index is named).
            ImportConflictError: An entry differs from what is stored under its id.
            SessionLeasedError: Another holder leases the session.
            LeaseLostError: ``fence``'s lease was taken over or released.
        """
        return self._execute(
            ops.import_checkpoints(
                session_id,
                entries,
                on_entry=on_entry,
                min_last_seq=min_last_seq,
                threads_ok=self._threads_ok,
                fence=fence,
                force=force,
            )
        )

    # -- reading -----------------------------------------------------------------------

    def get(self, checkpoint_id: str) -> Checkpoint | None:
        """Return the checkpoint with this id (``"session:seq"``), or ``None``.

        Raises:
            CheckpointTypeError: ``checkpoint_id`` is not a str.
        """
        op = ops.get(checkpoint_id)
        return None if op is None else self._execute(op)

    def get_latest(self, session_id: str, name: str | None = None) -> Checkpoint | None:
        """Return the session's highest-seq checkpoint (with ``name``, if given)."""
        return self._execute(ops.get_latest(session_id, name))

    def list_checkpoints(
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
        """Return a session's checkpoints in seq order (or newest first).

        Args:
            session_id: The session.
            name: Only checkpoints with this name.
            since: Only those created strictly after this aware datetime.
            start: Only those created at or after this aware datetime.
            end: Only those created at or before this aware datetime.
            newest_first: Highest seq first instead of lowest.
            limit: At most this many.
        """
        return self._execute(
            ops.list_checkpoints(
                session_id,
                name=name,
                since=since,
                start=start,
                end=end,
                newest_first=newest_first,
                limit=limit,
            )
        )

    def iter_checkpoints(self, session_id: str) -> Iterator[Checkpoint]:
        """Stream a session's checkpoints in seq order in one read transaction.

        Memory stays constant whatever the session's size; the read transaction stays
        open until the iterator is exhausted or closed.
        """
        session_id = check_key(session_id, "session_id")
        with self._transaction(write=False) as conn:
            # A fork need not wait for the consumer (see forkgate.ForkGate.suspending).
            yield from GATE.suspending(repo.iter_checkpoints(conn, session_id))

    def count(self, session_id: str) -> int:
        """Return how many checkpoints the session holds (0 if unknown)."""
        return self._execute(ops.count(session_id))

    def summary(self, session_id: str) -> dict[str, Any]:
        """Return the seed's summary dict for a session, from one read transaction.

        Keys: ``total_count``, ``unique_names``, ``names`` (name -> count, in order of
        first appearance), ``first_checkpoint``/``last_checkpoint`` (``to_dict()`` or
        ``None``) and ``duration_seconds``.
        """
        return self._execute(ops.summary(session_id))

    def export_chunks(
        self, session_id: str, *, on_batch: Callable[[int], object] | None = None
    ) -> Iterator[str]:
        """Stream a session's export (the seed's JSON format) piece by piece.

        One read transaction (one snapshot of the session) from the first piece to the
        last, on a pooled connection of its own: the caller may create checkpoints
        between pieces, on this store and thread, and they are not in this export.
        Memory stays constant whatever the session's size.

        Args:
            session_id: The session.
            on_batch: Called with the number of checkpoints in each batch read
                (progress).
        """
        with contextlib.closing(self.export_bytes(session_id, on_batch=on_batch)) as pieces:
            yield from text_pieces(pieces)

    def export_bytes(
        self, session_id: str, *, on_batch: Callable[[int], object] | None = None
    ) -> Iterator[memoryview]:
        """:meth:`export_chunks` as UTF-8 pieces, for a binary file or pipe.

        Writing these skips decoding each piece and encoding it again. Each piece is a
        read-only ``memoryview`` (any binary ``write`` takes one; ``bytes(piece)`` copies).
        """
        session_id = check_key(session_id, "session_id")
        with (
            self._transaction(write=False) as conn,
            # Closed before the transaction ends: no statement is left unfinished.
            contextlib.closing(repo.iter_row_batches(conn, session_id, EXPORT_BATCH)) as rows,
        ):
            pieces = export_pieces(rows if on_batch is None else reporting(rows, on_batch))
            yield from GATE.suspending(pieces)

    def export_json(self, session_id: str) -> str:
        """Return a session's checkpoints as the seed's export JSON (indent 2).

        The cyclic garbage collector is paused (process-wide) for the call: the batches
        it builds are acyclic and short-lived, and collections over them cost ~6%.
        """
        with gc_paused():
            # The UTF-8 pieces are gathered in one buffer (it grows in place; each
            # batch's rendering is freed as it goes) and decoded once. Measured in a
            # fresh process against joining the decoded pieces: ~20% faster and ~160
            # MiB less peak RSS per 100,000 ~1 KB checkpoints; a str of this text takes
            # two bytes a character, and fresh memory costs ~1 ms per MB in page faults.
            buffer = io.BytesIO()
            for piece in self.export_bytes(session_id):
                buffer.write(piece)
            return text_chunk(buffer.getbuffer())

    def list_sessions(
        self, *, prefix: str | None = None, idle_for: Any = None
    ) -> list[SessionInfo]:
        """Return every session with its counts and last activity, ordered by id.

        Args:
            prefix: Only sessions whose id starts with this (matched literally).
            idle_for: A ``timedelta``: only sessions with no write for at least this long.
        """
        return self._execute(ops.list_sessions(prefix, idle_for))

    def session_info(self, session_id: str) -> SessionInfo | None:
        """Return one session's :class:`SessionInfo`, or ``None`` if it does not exist."""
        return self._execute(ops.session_info(session_id))

    # -- maintenance -------------------------------------------------------------------

    def prune_sessions(
        self,
        idle_for: timedelta,
        *,
        prefix: str | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> list[tuple[str, int]]:
        """Delete every session with no write for at least ``idle_for``, in one transaction.

        Choosing and deleting happen in the same write transaction (``BEGIN IMMEDIATE``
        on SQLite), so an agent that writes to a session while the prune runs is never
        half-pruned: its write lands either before the prune (the session is no longer
        idle and is kept) or after it (the session starts again at seq 1). Added for
        ``breakpilot-store prune``.

        Args:
            idle_for: A positive ``timedelta``; sessions whose last write (``updated_at``)
                is older than now minus this are deleted.
            prefix: Only sessions whose id starts with this (matched literally).
            dry_run: Only report what would be deleted; a read transaction, nothing written.
            force: Also delete idle sessions that someone holds a live lease on (a live
                lease means a live holder: without ``force`` they are kept).

        Returns:
            ``(session_id, checkpoints_deleted)`` for each session, ordered by id.

        Raises:
            CheckpointTypeError: ``idle_for`` is not a ``timedelta``, or ``prefix`` not a str.
            CheckpointValueError: ``idle_for`` is not positive.
        """
        return self._execute(ops.prune_sessions(idle_for, prefix, dry_run, force))

    def wal_checkpoint(self, mode: str = "TRUNCATE") -> tuple[int, int, int]:
        """Run SQLite's WAL checkpoint (``PASSIVE``, ``FULL``, ``RESTART``, ``TRUNCATE``).

        Copies committed pages from the ``-wal`` file into the database so the WAL can be
        reset. A reader holding an old snapshot can stop it from finishing; run it again
        once readers have moved on.

        Returns:
            SQLite's ``(busy, wal_pages, checkpointed_pages)``; ``busy`` is 1 if it
            could not finish. ``(0, 0, 0)`` on other backends.
        """
        mode = checks.wal_mode(mode)
        if self._closed:
            raise StoreClosedError(f"store {self._where} is closed")
        if self._engine.dialect.name != "sqlite":
            return (0, 0, 0)
        return wal_checkpoint(self._engine, self._where, mode)

    def execute_read(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Run a read-only SQL query in one read transaction (for the ops CLI)."""
        return self._execute(ops.execute_read(sql, params))


__all__ = ["BreakpilotStoreError", "CheckpointStore", "SessionInfo", "aware"]
