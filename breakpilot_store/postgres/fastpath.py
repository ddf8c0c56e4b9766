"""PostgreSQL's hot path: ``create``, ``get`` and ``get_latest`` in one round trip each.

Profiled (benchmarks/OPTIMISATIONS.md), a create through SQLAlchemy Core took six or
seven round trips to the server: the pool's ping, ``BEGIN``, lock the session's row,
read its top seq, insert, ``COMMIT``. Here each call is ONE statement, run in
autocommit mode (a statement alone is its own transaction) on the bare psycopg
connection of a pooled SQLAlchemy connection: the create is
:data:`~breakpilot_store.core.repository.PG_CREATE`, which allocates the seq, rebases
the session's row and inserts the checkpoint at once; the reads are the repository's
Core statements. The SQL is compiled once for psycopg. Transaction rules are unchanged:
READ COMMITTED, writers of a session queue on its row, driver errors translated.

On a direct connection the create is sent below psycopg's cursor (:mod:`.direct`):
prepared once under a name of its own, its parameters as text; the cursor's
bookkeeping around one known statement was ~35 µs of a create's client CPU.

Server-side prepared statements: each thread's hot-path connection is its own, so on
a direct connection its four statements are prepared on first use (planning was most
of the server's time per create: 0.81 against 0.20 ms per create prepared, measured
with ``synchronous_commit=off``). With ``pgbouncer=True`` nothing is prepared (the
engine's ``prepare_threshold=None``): PgBouncer in transaction mode may hand each
transaction another server connection. There the settings must also be applied in
each transaction (``SET LOCAL``), so the statement is sent with ``BEGIN``, the
settings and ``COMMIT`` as one psycopg pipeline: still one round trip to the proxy.
(A pipeline costs ~100 µs more Python than a single statement, measured, so it is not
used where it is not needed.) Behind PgBouncer, ``pgbouncer=True`` is required anyway:
PgBouncer does not forward the startup options that carry the settings otherwise.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from ..checkpoint import Checkpoint
from ..core import repository as repo
from ..errors import DatabaseError
from ..sqlite.fastpath import PinnedConnections
from ..translate import translate_driver
from . import direct
from .direct import DirectStatement
from .engine import hot_path_engine, per_transaction_statement

_DIALECT = PGDialect_psycopg()
_COMPILED: dict[Any, tuple[str, dict[str, Any]]] = {}
_DIRECT: dict[Any, DirectStatement] = {}


def compiled(statement: Any) -> tuple[str, dict[str, Any]]:
    """Compile a Core statement once for psycopg (``%(name)s`` placeholders).

    Returns:
        The SQL and the parameters fixed at compile time (``LIMIT`` values, the
        settings bound into a text clause).
    """
    found = _COMPILED.get(statement)
    if found is None:
        result = statement.compile(dialect=_DIALECT)
        fixed = {k: v for k, v in result.params.items() if v is not None}
        found = _COMPILED[statement] = (result.string, fixed)
    return found


def _direct(statement: Any) -> DirectStatement:
    """``statement`` numbered for :class:`~.direct.DirectStatement` (once)."""
    found = _DIRECT.get(statement)
    if found is None:
        sql, fixed = compiled(statement)
        if fixed:  # values bound at compile time travel as parameters there
            raise ValueError("a direct statement takes all its values per call")
        found = _DIRECT[statement] = DirectStatement(sql)
    return found


def _params(statement: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sql, fixed = compiled(statement)
    return sql, ({**fixed, **params} if fixed else params)


class _Utf8Text(Dumper):
    r"""Sends ``bytes`` as text of unknown type: the codec's UTF-8 JSON, unchanged.

    Registered on the hot path's own connections only (their only ``bytes`` parameters
    are the JSON): a ``str`` would have to be decoded from orjson's bytes and encoded
    back by psycopg (for a 1 MB state, most of the client's time, measured on SQLite's
    driver). ``CAST(... AS JSON)`` in the SQL types it, as it types a ``str``. JSON
    text holds no NUL byte (the codec writes ``\u0000``).
    """

    format = Format.TEXT
    oid = 0  # unknown: the server infers it from the cast

    def dump(self, obj: bytes) -> bytes:
        return obj


def _alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether a pinned connection, idle since its last call, can still be used.

    No ping (that would be one more round trip per call): a server that drops a
    connection (restart, ``pg_terminate_backend``, an idle timeout) says so or closes
    the socket, which then turns readable while the connection is idle. Nothing else
    arrives unasked on these connections (they never ``LISTEN`` or ``SET``), so a
    readable socket means the connection is replaced.
    """
    pgconn = conn.pgconn
    if conn.closed or conn.broken or pgconn.status != 0:  # ConnStatus.OK
        return False
    try:
        return not select.select([pgconn.socket], [], [], 0)[0]
    except (OSError, psycopg.Error):  # no usable socket: replaced too
        return False


class PostgresHotPath:
    """Runs the hot statements of one store, one round trip each, on per-thread connections.

    Each thread that calls the hot path gets a server connection of its own, taken
    on first use from a pool of its own (:func:`~.engine.hot_path_engine`: a few idle
    ones are kept when threads end, for the next threads), held while the thread
    lives and closed with the store. They are outside the engine's pool (``pool_size``
    bounds the Core paths): checking a connection out of the pool and in again per
    call cost more than the statement, and SQLAlchemy's pre-ping one more round trip.
    A connection taken again keeps what it was set up with (autocommit, prepared
    statements).
    """

    def __init__(self, engine: Engine, where: str) -> None:
        self._where = where
        self._engine = hot_path_engine(engine)
        self._pins = PinnedConnections(self._engine, where, psycopg.Error)
        # PgBouncer mode: the SET LOCAL statement that opens every transaction.
        setting = per_transaction_statement(engine)
        self._settings = None if setting is None else _params(setting, {})

    def close(self) -> None:
        """Close every thread's connection."""
        self._pins.close()
        self._engine.dispose()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's connections without touching them."""
        self._pins.forget_after_fork()
        self._engine.dispose(close=False)

    @contextlib.contextmanager
    def _using(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection for one call: the store's close leaves it to the call.

        (See ``_Pin.enter``: psycopg's ``close`` under a statement running on another
        thread frees what libpq is using.) Entered before anything touches it, the
        liveness check's ``select`` on its socket included.
        """
        pin = self._pins.get()
        pin.enter()
        if not _alive(pin.connection):
            pin.leave()
            self._pins.drop()  # closed; get() opens a new one
            pin = self._pins.get()
            pin.enter()
        try:
            try:
                conn = self._ready(pin)
            except psycopg.Error as exc:
                raise translate_driver(exc, self._where) from exc
            yield conn
        finally:
            pin.leave()

    def _ready(self, pin: Any) -> psycopg.Connection[Any]:
        """The pin's connection, set up for the hot path on its first use."""
        conn = pin.connection
        if not conn.autocommit:  # a new connection: one statement, one transaction
            conn.autocommit = True
            conn.adapters.register_dumper(bytes, _Utf8Text)
            if self._settings is None:
                # A direct connection, this thread's alone: the few hot statements are
                # prepared on first use (parsing and planning cost ~3/4 of a create's
                # time in the server, measured). Never through PgBouncer (pgbouncer=True),
                # where each transaction may land on another server connection.
                conn.prepare_threshold = 0
                # The create goes below the cursor (direct.py), its text as UTF-8.
                conn._bp_direct = direct.AVAILABLE and conn.info.encoding == "utf-8"  # type: ignore[attr-defined]
                # Large states: TOAST compresses a value over ~2 kB, and pglz (the
                # default) was most of a 100 kB create's time in the server (2.7-3.2
                # against 0.7-1.1 ms with lz4, measured). Only this connection's own
                # inserts; reading is the same. A server built without lz4 refuses the
                # value, and keeps pglz.
                try:
                    conn.execute("SET default_toast_compression = lz4", prepare=False)
                except psycopg.Error:
                    pass
        return conn

    def _run(
        self, statement: Any, params: dict[str, Any], *, retry: bool = False
    ) -> psycopg.Cursor[Any]:
        """Run one statement as its own transaction; return its cursor (results read).

        Driver errors leave as typed errors, except a unique violation, which is
        re-raised as it is for :meth:`append`. With ``retry`` (reads), a connection
        found broken is replaced and the statement sent again, once.
        """
        query = _params(statement, params)
        with self._using() as conn:
            try:
                if self._settings is None:
                    # Autocommit: the one statement is the whole transaction.
                    return conn.execute(*query)
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(*self._settings)
                    cursor = conn.execute(*query)
                    conn.execute("COMMIT")
                return cursor
            except psycopg.Error as exc:
                if not self._recover(conn) and retry:
                    return self._run(statement, params)
                if isinstance(exc, psycopg.errors.UniqueViolation):
                    raise
                raise translate_driver(exc, self._where) from exc

    def _recover(self, conn: psycopg.Connection[Any]) -> bool:
        """After a failed statement: whether ``conn`` is still this thread's to use.

        A broken connection is dropped (the next call opens another); an open
        transaction is rolled back.
        """
        if conn.closed or conn.broken:
            self._pins.drop()
            return False
        if conn.info.transaction_status != 0:  # not idle: roll the rest back
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                self._pins.drop()
                return False
        return True

    def transaction(
        self, statements: Sequence[tuple[Any, dict[str, Any]]]
    ) -> list[list[Any]] | None:
        """Run ``statements`` as one transaction in one round trip; each one's rows.

        A psycopg pipeline: ``BEGIN`` (and the settings, behind PgBouncer), the
        statements, ``COMMIT``, sent together; the results are read after the commit.
        In READ COMMITTED each statement sees what committed before it started, so one
        that follows a row lock sees everything the lock's previous holder wrote. A
        single statement on a direct connection is sent alone, in autocommit mode (its
        own transaction): a pipeline costs ~100 µs more Python.

        ``None`` (nothing written: the transaction rolled back) when the statements
        met a concurrent writer: a row another transaction deleted meanwhile (a thread
        deleted while its put_writes' statement ran: a foreign key violation), a seq
        another took first, or a deadlock (a thread's first puts: the lock statement
        found no row while the first put was uncommitted, and the insert after it read
        the top seq unlocked). The caller's full operation, which locks first, decides.
        """
        if len(statements) == 1 and self._settings is None:
            try:
                cursor = self._run(*statements[0])
            except psycopg.errors.UniqueViolation as exc:  # _run leaves it for append
                raise translate_driver(exc, self._where) from exc
            except DatabaseError as exc:
                if isinstance(exc.__cause__, _GIVE_WAY):
                    return None
                raise
            return [cursor.fetchall() if cursor.description else []]
        queries = [_params(statement, params) for statement, params in statements]
        with self._using() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    if self._settings is not None:
                        conn.execute(*self._settings)
                    cursors = [conn.execute(*query) for query in queries]
                    conn.execute("COMMIT")
                return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
            except _GIVE_WAY:
                self._recover(conn)
                return None
            except psycopg.Error as exc:
                self._recover(conn)
                raise translate_driver(exc, self._where) from exc

    def append(
        self,
        session_id: str,
        name: str,
        now: datetime,
        data: bytes,
        metadata: str,
        compress_after: int | None,
        max_checkpoints: int | None,
        token: int | None = None,
    ) -> int | None:
        """A plain create in one round trip; ``None`` when the retention rule is due.

        Or when the lease refused it (``token``: a lease holder's, whose token must be
        current; else no live lease may exist). Then nothing was written, and the
        caller runs the full create, which applies the rule in its own transaction (or
        says why the lease refused it).
        """
        statement = repo.pg_create_statement(
            session_id, name, now, data, metadata, compress_after, max_checkpoints, token
        )
        try:
            if self._settings is None:
                with self._using() as conn:
                    if getattr(conn, "_bp_direct", False):
                        return self._append_direct(conn, *statement)
            row = self._run(*statement).fetchone()  # behind PgBouncer: nothing prepared
        except psycopg.errors.UniqueViolation:
            return None  # raced by a writer that does not rebase the row: the full path
        return None if row is None else int(row[0])

    def _append_direct(
        self, conn: psycopg.Connection[Any], statement: Any, params: dict[str, Any]
    ) -> int | None:
        """:meth:`append`'s statement below the cursor (direct.py: ~35 µs less CPU)."""
        try:
            result = _direct(statement).execute(conn, params)
        except psycopg.errors.UniqueViolation:
            raise  # for append
        except psycopg.Error as exc:
            self._recover(conn)
            raise translate_driver(exc, self._where) from exc
        return int(result.get_value(0, 0)) if result.ntuples else None

    def read(self, statement: Any, params: dict[str, Any]) -> Checkpoint | None:
        """A point read (an operation's ``read``: a checkpoint row or none), one round trip.

        See :func:`~breakpilot_store.core.repository.fetch_statement` and
        :func:`~breakpilot_store.core.repository.fetch_latest_statement`.
        """
        cursor = self._run(statement, params, retry=True)
        try:
            return _checkpoint(cursor)
        except psycopg.Error as exc:  # a stored value Python cannot hold (see translate)
            raise translate_driver(exc, self._where) from exc


#: What an attempt (``transaction``) that met a concurrent writer raises: it gives way
#: to the full operation.
_GIVE_WAY = (
    psycopg.errors.ForeignKeyViolation,
    psycopg.errors.UniqueViolation,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


def _checkpoint(cursor: psycopg.Cursor[Any]) -> Checkpoint | None:
    row = cursor.fetchone()
    if row is None:
        return None
    created_at = row[3]
    if created_at.tzinfo is not timezone.utc:  # psycopg gives the session's time zone
        row = (*row[:3], created_at.astimezone(timezone.utc), *row[4:])
    return repo.row_to_checkpoint(row)
