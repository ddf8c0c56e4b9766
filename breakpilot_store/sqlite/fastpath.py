"""The SQLite hot path: ``create``, ``get`` and ``get_latest`` on the bare driver.

Agents call ``create`` on every step and ``get_latest`` on every restart, so these three
must cost what a hand-written ``sqlite3`` transaction costs. Measured (benchmarks/),
SQLAlchemy's per-call machinery (pool checkout, ``Connection``, events, result
objects) cost several times SQLite's own work. Here the same SQL (the constants in
:mod:`breakpilot_store.core.repository` and :mod:`breakpilot_store.core.retention`) runs on a
``sqlite3`` connection that SQLAlchemy's pool created (so it carries the engine's PRAGMAs)
and that stays pinned to the calling thread; the transaction rules are unchanged:
``BEGIN IMMEDIATE`` for the write, one transaction per call, driver errors translated.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite

from ..core.retention import retention_params
from ..errors import StoreClosedError
from ..forkgate import GATE
from ..schema import to_text
from ..translate import translate_driver
from .counter_cache import CounterCache


class _Pin:
    """Holds one thread's connection and its counter cache.

    When the thread ends, the holder is collected and its finalizer hands the connection
    back to the pool.
    """

    __slots__ = ("connection", "counters", "active", "busy", "_pins", "_utf8", "__weakref__")

    def __init__(self, connection: Any, pins: PinnedConnections) -> None:
        self.connection = connection
        self.counters = CounterCache()
        #: Whether a write transaction of this store runs on it now (a create made
        #: from inside ``run(op, hot=True)`` joins it); an open transaction while this
        #: is False was left by an interrupt.
        self.active = False
        #: How many calls use the connection now (nested ones count): see :meth:`enter`.
        self.busy = 0
        self._pins = pins
        self._utf8: bool | None = None

    def enter(self) -> None:
        """A call starts using the connection (on its thread, or in the serial turn).

        Raises:
            StoreClosedError: The store was closed; the call must not use it.
        """
        # The flag is set before ``closed`` is read, and ``close`` sets ``closed``
        # before it reads the flags (the GIL orders the four): either this call sees
        # the store closed, or close() sees the connection busy and leaves it to the
        # call, which hands it back in :meth:`leave`. Never closed under a call: the
        # driver would use freed memory (a segfault, found by closing a store while
        # other threads wrote).
        self.busy += 1
        if self._pins.closed:
            self.leave()
            raise StoreClosedError(f"store {self._pins.where} is closed")

    def leave(self) -> None:
        """The call that :meth:`enter` began is done with the connection."""
        self.busy -= 1
        if not self.busy and self._pins.closed:
            self._pins.retire(self)

    def leftover(self) -> bool:
        """Whether the connection holds a transaction nobody is running (interrupted)."""
        return not self.active and self.connection.in_transaction

    def text(self, utf8: bytes) -> bytes | str:
        """JSON text to bind where the SQL casts it to ``TEXT``.

        The UTF-8 bytes as they are when the database's text is UTF-8 (``CAST`` then
        takes them unchanged: no decode and re-encode in Python), else decoded (a UTF-16
        file would read the bytes as UTF-16).
        """
        if self._utf8 is None:
            row = self.connection.execute("PRAGMA encoding").fetchone()
            self._utf8 = row[0] == "UTF-8"
        return utf8 if self._utf8 else utf8.decode()


class PinnedConnections:
    """One pooled driver connection per thread, checked out on first use.

    Used by both hot paths (this one, and PostgreSQL's over a pool-less engine). Besides
    them, one connection that is no thread's (:meth:`shared`).
    """

    def __init__(
        self, engine: Engine, where: str, driver_error: type[Exception] = sqlite3.Error
    ) -> None:
        self._engine = engine
        self.where = where
        # The driver's exceptions, raised by opening a connection (the pool passes them
        # through): typed like every other driver error.
        self._driver_error = driver_error
        self._local = threading.local()
        self._finalizers: list[weakref.finalize] = []
        self._lock = threading.Lock()
        self._shared: _Pin | None = None
        #: Set by :meth:`close`; calls that :meth:`_Pin.enter` afterwards are refused.
        self.closed = False
        # Connections that were busy when the store closed, by holder: each goes when
        # its call leaves it (:meth:`retire`).
        self._busy_at_close: dict[int, weakref.finalize] = {}

    def get(self) -> _Pin:
        """Return the calling thread's connection holder, checking one out if needed."""
        pin: _Pin | None = getattr(self._local, "pin", None)
        if pin is not None:
            return pin
        pin = self._local.pin = self._checkout()
        return pin

    def writing_here(self) -> bool:
        """Whether a write transaction runs on the calling thread's connection now."""
        pin: _Pin | None = getattr(self._local, "pin", None)
        return pin is not None and pin.active

    def shared(self) -> _Pin:
        """Return the connection holder that is no thread's, checking one out if needed.

        For writes that many threads serialise among themselves (the caller holds their
        lock, so one thread at a time uses it): in WAL mode a connection's page cache
        survives its own commits only, so writes taking turns on one connection find
        their pages cached, where each on its own thread's connection first read them
        again (``CheckpointStore.run(serial=True)``).
        """
        pin = self._shared
        if pin is None:
            pin = self._shared = self._checkout()
        return pin

    def _checkout(self) -> _Pin:
        """Check a connection out of the pool; it goes back when its holder is collected."""
        if self.closed:  # (the engine would open a new pool)
            raise StoreClosedError(f"store {self.where} is closed")
        try:
            with GATE:  # opening runs SQLite code: not while a fork copies the process
                proxied = self._engine.raw_connection()
        except Exception as exc:  # noqa: BLE001 - translated below or re-raised
            raise _translated(exc, self.where, self._driver_error) from exc
        pin = _Pin(proxied.driver_connection, self)
        finalizer = weakref.finalize(pin, _give_back, proxied)
        with self._lock:
            self._finalizers = [f for f in self._finalizers if f.alive]
            self._finalizers.append(finalizer)
        return pin

    def drop(self) -> None:
        """Give back the calling thread's connection now (it broke); ``get`` makes another."""
        pin: _Pin | None = getattr(self._local, "pin", None)
        if pin is None:
            return
        del self._local.pin
        with self._lock:
            for finalizer in self._finalizers:
                found = finalizer.peek()
                if found is not None and found[0] is pin:
                    finalizer.detach()
                    # Invalidated, not closed: closing would first try to roll back
                    # on the broken connection.
                    found[2][0].invalidate()  # _give_back's argument: the proxied one
            self._finalizers = [f for f in self._finalizers if f.alive]

    def close(self) -> None:
        """Return every pinned connection to the pool (before the engine is disposed).

        A connection that a call on another thread is using now is left to that call,
        which closes it when it is done with it (:meth:`_Pin.leave`): the call ends as
        it would have, and later calls are refused with ``StoreClosedError``.
        """
        self.closed = True  # before the flags are read: see _Pin.enter
        idle = []
        with self._lock:
            finalizers, self._finalizers = self._finalizers, []
            for finalizer in finalizers:
                found = finalizer.peek()
                if found is not None and found[0].busy:
                    self._busy_at_close[id(found[0])] = finalizer
                else:
                    idle.append(finalizer)
        for finalizer in idle:
            finalizer()
        self._local = threading.local()
        self._shared = None

    def retire(self, pin: _Pin) -> None:
        """Close a connection the store's close left to its call, now that it is done."""
        with self._lock:
            finalizer = self._busy_at_close.pop(id(pin), None)
        if finalizer is None:
            return  # (close found it idle, or this ran already)
        found = finalizer.detach()
        if found is not None:
            proxied = found[2][0]  # _give_back's argument
            with GATE:
                # Closed, not given back: the pool it came from was disposed with the
                # store, and would keep it open until collected.
                proxied.invalidate()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's connections without touching them."""
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._shared = None


def _give_back(proxied: Any) -> None:
    """Return a finished thread's connection to the pool (which may close it)."""
    with GATE:
        proxied.close()


def _translated(exc: Exception, where: str, driver_error: type[Exception]) -> Exception:
    from sqlalchemy.exc import SQLAlchemyError

    from ..translate import translate

    if isinstance(exc, SQLAlchemyError):
        return translate(exc, where)
    if isinstance(exc, driver_error):
        return translate_driver(exc, where)
    return exc


class DriverTransaction:
    """One hot-path transaction on a pinned connection.

    A class rather than a generator: the context-manager protocol is on every create's
    path, and this is the cheaper form of it.
    Writes run between ``BEGIN IMMEDIATE`` and ``COMMIT`` and are rolled back on any
    error. A read is a single statement, which SQLite runs as its own implicit read
    transaction: the same isolation as ``BEGIN; SELECT; COMMIT``, two round trips fewer.
    """

    __slots__ = ("_pin", "_conn", "_counters", "_where", "_write", "_open", "_outer", "_entered")

    def __init__(self, pin: _Pin, where: str, write: bool) -> None:
        self._pin = pin
        self._outer = pin.active  # inside another write of this thread (re-entrant)
        self._conn = pin.connection
        self._counters = pin.counters
        self._where = where
        self._write = write
        self._open = False
        self._entered = False  # (a closed store refuses the call before it begins)

    def __enter__(self) -> DriverConnection:
        GATE.enter()  # no fork while this thread runs SQLite code (see forkgate)
        try:
            self._pin.enter()
        except BaseException:
            GATE.exit()
            raise
        self._open = self._entered = True
        if not self._write:
            return DriverConnection(self._conn, self._where, self._counters)
        try:
            if self._pin.leftover():
                # Left open by an interrupt that landed where nothing could end it (as
                # ``__exit__`` began): no call acknowledged it, so it is rolled back.
                self._counters.forget()
                self._rollback()
            self._conn.execute("BEGIN IMMEDIATE")
            self._pin.active = True
            return DriverConnection(self._conn, self._where, self._counters)
        except BaseException as exc:
            # Not only driver errors: a KeyboardInterrupt (or a signal handler's
            # exception) that lands just after BEGIN returned skips ``__exit__``, and
            # the pinned connection kept its transaction, holding the file's write lock
            # for every process until this one ended, its own writes all refused.
            self._rollback()
            self._close()
            if isinstance(exc, sqlite3.Error):
                raise translate_driver(exc, self._where) from exc
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._end(exc_type)
        finally:
            self._close()

    def abandon(self) -> None:
        """End the transaction if an exception skipped ``__exit__`` (idempotent).

        An interrupt can land as ``__exit__`` begins, before any of its code runs:
        the transaction then stayed open, holding the file's write lock, until this
        thread's next write. The caller's ``except BaseException`` calls this.
        """
        # Not only while ``_open``: an interrupt as ``_end`` began skips it, and the
        # ``finally`` in ``__exit__`` still closes. Outermost, an open transaction is ours.
        if self._write and not self._outer and self._entered and self._left_open():
            self._counters.forget()
            self._rollback()
        self._close()

    def _left_open(self) -> bool:
        try:
            return self._pin.active or self._conn.in_transaction
        except sqlite3.ProgrammingError:
            return False  # closed with the store (its last call let go): nothing is open

    def _close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._pin.leave()
            finally:
                GATE.exit()

    def _end(self, exc_type: Any) -> None:
        if not self._write:
            return
        if exc_type is not None:
            self._counters.settle(committed=False)
            self._rollback()
            return
        conn = self._conn
        self._pin.active = False  # (a failed COMMIT is rolled back just below)
        try:
            conn.execute("COMMIT")
            self._counters.settle(committed=True)
        except sqlite3.Error as error:
            self._counters.settle(committed=False)
            self._rollback()
            raise translate_driver(error, self._where) from error
        except BaseException:
            # Interrupted around the COMMIT or its bookkeeping: whether the staged
            # counter was kept is unknown, and a stale one would hand out a seq again
            # (this connection's own commits do not move data_version). Forget them all:
            # the next create reads the counter from the database.
            self._counters.forget()
            self._rollback()
            raise

    def _rollback(self) -> None:
        # Never another call's transaction: a re-entrant BEGIN fails and must leave
        # the outer one (and its flag) alone.
        if not self._outer:
            self._pin.active = False
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")


_DIALECT = sqlite.dialect(paramstyle="named")
_COMPILED: dict[Any, tuple[str, dict[str, Any], tuple[str, ...]]] = {}
_TIMESTAMP_PARAMS = ("now", "created_at")


def _compile(statement: Any) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """Compile a Core statement once for sqlite3's named style.

    Returns:
        The SQL, the parameters SQLAlchemy fixed at compile time (e.g. LIMIT values),
        and which of the parameters are timestamps.
    """
    found = _COMPILED.get(statement)
    if found is None:
        compiled = statement.compile(dialect=_DIALECT)
        fixed = {k: v for k, v in compiled.params.items() if v is not None}
        stamps = tuple(k for k in _TIMESTAMP_PARAMS if k in compiled.params)
        found = _COMPILED[statement] = (compiled.string, fixed, stamps)
    return found


_QMARK = sqlite.dialect(paramstyle="qmark")
_COMPILED_QMARK: dict[Any, str] = {}


def _compile_in_order(statement: Any, order: tuple[str, ...]) -> str:
    """Compile a statement once for sqlite3's ``?`` style, checking its binds' order.

    Raises:
        ValueError: The statement binds its parameters in another order (a programming
            error: the caller's tuple would bind values to the wrong columns).
    """
    found = _COMPILED_QMARK.get(statement)
    if found is None:
        compiled = statement.compile(dialect=_QMARK)
        if tuple(compiled.positiontup or ()) != order:
            raise ValueError(f"{statement} binds {compiled.positiontup}, not {order}")
        found = _COMPILED_QMARK[statement] = compiled.string
    return found


class DriverConnection:
    """Runs the repository's Core statements on a bare ``sqlite3`` connection.

    It offers what the repository's hot-path functions use: ``execute(statement,
    params)`` (and ``execute_in_order`` for the one-statement create), with SQLAlchemy's
    SQL compiled once per statement and the same text timestamps the ``UTCDateTime``
    type would bind; and the connection's :class:`CounterCache` as ``counter_cache``.
    """

    __slots__ = ("_conn", "_where", "_stamp", "counter_cache")

    #: SQLite's dialect, as a ``Connection`` has one: code written for both (``hot``
    #: operations of ``store.run``) picks its SQL by ``conn.dialect.name``.
    dialect = sqlite.dialect()

    def __init__(
        self, conn: sqlite3.Connection, where: str, counter_cache: CounterCache | None = None
    ) -> None:
        self._conn = conn
        self._where = where
        self._stamp: tuple[Any, str] = (None, "")
        self.counter_cache = counter_cache

    def execute(
        self, statement: Any, params: dict[str, Any] | list[dict[str, Any]]
    ) -> sqlite3.Cursor:
        """Execute a Core statement with ``params``; driver errors are translated.

        A list of parameter dicts runs the statement once for each (``executemany``,
        as ``Connection.execute`` does with a list); its ``rowcount`` is their total.
        """
        if type(params) is list:
            return self._executemany(statement, params)
        sql, fixed, stamps = _compile(statement)
        if fixed:
            params = {**fixed, **params}
        for key in stamps:
            value = params[key]
            if value is not None:
                # One create binds the same instant twice: render it once.
                if value is not self._stamp[0]:
                    self._stamp = (value, to_text(value))
                params[key] = self._stamp[1]
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise translate_driver(exc, self._where) from exc

    def _executemany(self, statement: Any, many: list[dict[str, Any]]) -> sqlite3.Cursor:
        sql, fixed, stamps = _compile(statement)
        if fixed or stamps:
            many = [{**fixed, **params} for params in many]
            for params in many:
                for key in stamps:
                    if params[key] is not None:
                        params[key] = to_text(params[key])
        try:
            return self._conn.executemany(sql, many)
        except sqlite3.Error as exc:
            raise translate_driver(exc, self._where) from exc

    def execute_in_order(
        self, statement: Any, order: tuple[str, ...], values: tuple[Any, ...]
    ) -> sqlite3.Cursor:
        """Execute a statement with ``values`` bound in ``order`` (its binds' order).

        For the one-statement create, every agent's step: binding a tuple saves ~1 µs
        (~5% of a create) against :meth:`execute`'s dict of named parameters. Values
        bind as they are: timestamps already rendered as stored text.
        """
        GATE.enter()  # the one-statement create is a transaction of its own
        try:
            return self._conn.execute(_compile_in_order(statement, order), values)
        except sqlite3.Error as exc:
            raise translate_driver(exc, self._where) from exc
        finally:
            GATE.exit()


def append(
    pin: _Pin,
    where: str,
    session_id: str,
    name: str,
    now: datetime,
    data_text: str | bytes,
    metadata_text: str,
    compress_after: int | None,
    max_checkpoints: int | None,
    fence: Any = None,
) -> int | None:
    """A create as one guarded statement, when this thread's connection knows the counter.

    Nothing but the checkpoint's row is written, in one autocommit statement that is
    the whole transaction (see :mod:`breakpilot_store.sqlite.counter_cache`). The
    statement also carries the lease check (``fence``: a lease holder's, else ``None``),
    unless this connection's previous create in the session proved the same check.

    Returns:
        The seq, or ``None`` when the full transaction is needed (the counter is not
        known for sure, the retention rule is due, the lease refused it, or the
        holder's lease is due for renewal).
    """
    from ..core.repository import append_if_unchanged  # (the repository imports this module)

    pin.enter()  # (see _Pin.enter: a close() meanwhile leaves the connection to us)
    try:
        known = pin.counters.known(session_id)
        if known is None or pin.leftover():
            # (An interrupted call's open transaction would swallow the autocommit INSERT:
            # acknowledged, never committed. The full path ends it first.)
            return None
        if fence is not None and fence.renewal_due():
            return None  # the full transaction renews the lease
        version, last_seq, held, proof = known
        # Whose lease check the counter's create passed, and whose this create needs.
        token = None if fence is None else fence.token
        writer = 0 if token is None else token
        if retention_params(session_id, held + 1, compress_after, max_checkpoints) is not None:
            return None  # compression or the cap: a DELETE and the row's rebase
        seq = last_seq + 1
        conn = DriverConnection(pin.connection, where)
        data = pin.text(data_text) if type(data_text) is bytes else data_text
        try:
            inserted = append_if_unchanged(
                conn,
                session_id,
                seq,
                name,
                now,
                data,
                metadata_text,
                version,
                token,
                proof == writer,
            )
            if inserted:
                # Inside the try: an interrupt between the autocommit INSERT and this line
                # left the counter one behind the row just committed (this connection's own
                # commits do not move data_version), and a later create reused the seq.
                pin.counters.appended(session_id, seq, held + 1, writer)
        except BaseException:
            pin.counters.forget()
            raise
        if not inserted:
            # Someone else committed (the full transaction reads the counter), or the lease
            # refused it (the full transaction says why).
            pin.counters.forget()
            return None
        return seq
    finally:
        pin.leave()


def fetch_batches(
    conn: sqlite3.Connection, statement: Any, params: dict[str, Any], size: int
) -> Iterator[list[Any]]:
    """Run a compiled-once Core SELECT on a bare ``sqlite3`` connection, ``size`` rows at a time.

    The bulk read path (exports): SQLAlchemy's result machinery costs about as much per
    row as SQLite's own read. Rows come back as the driver returns them (timestamps as
    their stored text). The cursor is closed when the generator finishes or is closed,
    so no unfinished statement outlives the caller's transaction. Driver errors
    propagate as ``sqlite3.Error``; the caller's transaction translates them.
    """
    sql, fixed, _ = _compile(statement)
    cursor = conn.execute(sql, {**fixed, **params} if fixed else params)
    try:
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()
