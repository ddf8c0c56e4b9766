"""Turn a path or URL into a configured SQLAlchemy ``Engine``.

SQLite gets the pysqlite recipe from SQLAlchemy's documentation: the driver's own
transaction handling is switched off and the ``begin`` event emits the ``BEGIN`` itself,
``BEGIN IMMEDIATE`` for writes. A write that starts deferred and upgrades later can fail
with "database is locked" regardless of busy_timeout; taking the write lock up front
makes every writer wait its turn instead.
"""

from __future__ import annotations

import os
import sqlite3
import time
import traceback
import weakref
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import CheckpointTypeError, CheckpointValueError, UnsupportedDatabaseError

#: Environment variable naming the default store's URL.
URL_ENV = "BREAKPILOT_STORE_URL"

#: Execution option that marks a connection's transaction as a write (BEGIN IMMEDIATE).
WRITE = "breakpilot_write"

#: RETURNING arrived in SQLite 3.35; the sequence allocation depends on it.
MIN_SQLITE = (3, 35, 0)

Durability = Literal["full", "normal"]
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}

#: The pool record of every SQLite connection made here, so that a forked child can
#: close the ones it inherited (see :func:`close_inherited_connections`).
_SQLITE_RECORDS: weakref.WeakSet[Any] = weakref.WeakSet()


def close_inherited_connections() -> None:
    """In a forked child, close every SQLite connection inherited from the parent.

    SQLite keeps each file's lock state in process memory, shared by all connections
    to that file. While an inherited connection stays open, the child's own new
    connections trust the parent's locks instead of taking their own; the parent can
    then see itself as the file's last user, checkpoint, and delete the ``-wal`` the
    child is still appending to (its acknowledged checkpoints are lost). Closing them in
    the child leaves the parent's locks and files alone: POSIX locks belong to the
    process that took them, and an idle connection's close writes nothing while the
    parent holds its shared lock. A connection inside a transaction (another parent
    thread mid-write at the fork) is left untouched: rolling it back here would write
    to the ``-shm`` the parent is using.
    """
    for record in list(_SQLITE_RECORDS):
        conn = record.dbapi_connection
        if conn is None or conn.in_transaction:
            continue
        record.dbapi_connection = None  # the pool must not reset or close it again
        try:
            conn.close()
        except sqlite3.Error:
            pass
    _SQLITE_RECORDS.clear()


def release_interrupted(exc: BaseException) -> BaseException | None:
    """Let go of what an interrupted statement holds: its cursor, and so the file's locks.

    A ``KeyboardInterrupt`` (or another exception that is not an ``Exception``) raised
    while a statement runs makes SQLAlchemy invalidate the connection, closing it. But
    SQLite defers closing a connection while one of its statements is unfinalized, and
    the cursor is held by the frames of the interrupt's own traceback, a reference
    cycle: the zombie connection kept its transaction, and the file's write lock, until
    the cyclic garbage collector happened to run. Every writer in every process waited
    ``busy_timeout`` and failed meanwhile. Clearing the finished frames' locals drops
    the cursor now (the traceback still shows where it happened).

    Args:
        exc: An exception leaving a transaction.

    Returns:
        The interrupt to raise instead of ``exc``, or ``None`` if ``exc`` is none. An
        interrupt just as SQLAlchemy's commit began surfaces as its ``AssertionError``
        ("assert not self.is_active"); the interrupt is what the caller should see.
    """
    interrupt: BaseException | None = None
    if not isinstance(exc, Exception):
        interrupt = exc
    elif isinstance(exc, AssertionError):
        context = exc.__context__
        if isinstance(context, BaseException) and not isinstance(context, Exception):
            interrupt = context
    if interrupt is not None:
        traceback.clear_frames(exc.__traceback__)
        traceback.clear_frames(interrupt.__traceback__)
    return interrupt


def _enable_wal(cursor: sqlite3.Cursor, busy_timeout: float) -> None:
    """Switch the file to WAL (once; the mode is stored in the file).

    Leaving rollback-journal mode needs an exclusive lock, and SQLite answers "database
    is locked" at once, without its busy handler, when another opener holds a lock at
    that moment (many agents opening a new file together). So the switch is retried
    for up to ``busy_timeout``; a file already in WAL is only read.
    """
    deadline = time.monotonic() + busy_timeout
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != 5 or time.monotonic() > deadline:
                raise  # not SQLITE_BUSY, or busy for longer than busy_timeout
            time.sleep(0.005)
            continue
        if mode.lower() != "wal":
            # Refused without an error: a database that cannot be in WAL (in memory,
            # such as ``file::memory:``). Asked again, it looped here for ever.
            return


def default_url() -> str:
    """Return the default store URL: ``$BREAKPILOT_STORE_URL`` or a per-user SQLite file."""
    env = os.environ.get(URL_ENV)
    if env:
        return env
    from platformdirs import user_data_path  # only needed when no store is named

    directory = user_data_path("breakpilot-store", appauthor=False)
    directory.mkdir(parents=True, exist_ok=True)
    return str(URL.create("sqlite", database=str(directory / "checkpoints.db")))


def resolve_url(target: str | os.PathLike[str] | URL | None) -> URL:
    """Interpret ``target`` as a SQLAlchemy URL, a filesystem path, or the default.

    Raises:
        CheckpointValueError: ``target`` is neither a usable URL nor a path.
    """
    if target is None:
        target = default_url()
    if isinstance(target, URL):
        return target
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str) or not target:
        raise CheckpointValueError(f"store must be a path or a database URL, not {target!r}")
    if "\x00" in target:
        raise CheckpointValueError(f"store path or URL contains a NUL character: {target!r}")
    if "://" in target:
        try:
            url = make_url(target)
        except ArgumentError as exc:
            raise CheckpointValueError(f"not a valid database URL: {target!r}") from exc
        if url.get_backend_name() != "sqlite":
            try:  # a server URL goes over the wire as UTF-8 (a path may be any bytes)
                target.encode("utf-8")
            except UnicodeEncodeError:
                raise CheckpointValueError(
                    f"database URL contains a lone surrogate: {target!r}"
                ) from None
        return url
    if target == ":memory:":
        # sqlite3's (and LangGraph's SqliteSaver's) spelling of an in-memory database:
        # the same as "sqlite://", never a file named ":memory:" in the current directory.
        return make_url("sqlite://")
    return URL.create("sqlite", database=str(Path(target).expanduser().absolute()))


def sqlite_path(url: URL) -> Path | None:
    """Return the file a SQLite URL points at, or ``None`` for memory or other backends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
        if database in ("", ":memory:"):  # file::memory: is a URI for memory too
            return None
    return Path(database)


def check_sqlite_version(version: tuple[int, int, int] | None = None) -> None:
    """Refuse an SQLite library older than the store needs.

    Args:
        version: The version to check; by default the linked library's, read at call
            time (not import time), so a test can stand in an older one.

    Raises:
        UnsupportedDatabaseError: The linked SQLite is older than 3.35 (no RETURNING).
    """
    if version is None:
        version = sqlite3.sqlite_version_info
    if version < MIN_SQLITE:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_SQLITE))
        raise UnsupportedDatabaseError(
            f"SQLite {have} is too old: breakpilot_store needs {need} or newer (RETURNING)"
        )


def create_sqlite_engine(
    url: URL,
    *,
    durability: Durability = "full",
    busy_timeout: float = 30.0,
    readonly: bool = False,
    immutable: bool = False,
) -> Engine:
    """Create an engine for a SQLite URL with the store's PRAGMAs and BEGIN handling.

    ``immutable`` (with ``readonly``) reads the file as a snapshot that nobody changes,
    without ``-wal``/``-shm`` files: the only way to read a WAL database in a read-only
    directory that has none (SQLite must create them otherwise, even to read).
    """
    check_sqlite_version()
    if not isinstance(durability, str) or durability not in _SYNCHRONOUS:
        raise CheckpointValueError(f"durability must be 'full' or 'normal', not {durability!r}")
    path = sqlite_path(url)
    if readonly and path is not None:
        # mode=ro makes SQLite itself refuse writes, so a read-only command cannot
        # take a write lock even by mistake.
        snapshot = "&immutable=1" if immutable else ""
        url = make_url(f"sqlite:///file:{quote(str(path))}?mode=ro{snapshot}&uri=true")
    try:
        if path is None:
            # In memory: one database for the store, whichever thread calls (see memory.py).
            from .sqlite.memory import SharedMemoryPool

            engine = create_engine(
                url,
                poolclass=SharedMemoryPool,
                pool_timeout=busy_timeout,
                connect_args={"timeout": busy_timeout, "check_same_thread": False},
            )
        else:
            # No bound on the connections: each thread that creates keeps one pinned for
            # its life (sqlite/fastpath.py), so a bounded pool ran dry with a thread pool's
            # 15th live thread, and every other call then waited for a connection although
            # no lock was held. SQLite connections are cheap; five idle ones are kept.
            engine = create_engine(
                url, pool_size=5, max_overflow=-1, connect_args={"timeout": busy_timeout}
            )
    except (ValueError, TypeError) as exc:
        # A URL parameter SQLAlchemy's driver reads and cannot (?timeout=abc).
        raise CheckpointValueError(f"cannot use the SQLite URL {url}: {exc}") from exc
    synchronous = _SYNCHRONOUS[durability]
    busy_ms = int(busy_timeout * 1000)
    wal = path is not None and not readonly

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let the begin event below emit BEGIN: pysqlite's own handling would start
        # transactions late and never as IMMEDIATE.
        dbapi_connection.isolation_level = None
        if path is not None:  # an in-memory database has no file state to share
            _SQLITE_RECORDS.add(_record)
        cursor = dbapi_connection.cursor()
        try:
            # Wait this long for another connection's lock before raising "busy".
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            # Enforce the sessions -> checkpoints foreign key (ON DELETE CASCADE).
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                # Readers never block the writer, and the writer never blocks readers.
                _enable_wal(cursor, busy_timeout)
            # FULL: a commit survives power loss. NORMAL (opt-in): it may be lost, but
            # the file never corrupts.
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        # An interrupt (KeyboardInterrupt, a signal handler's exception) that lands
        # just after the begin event's BEGIN IMMEDIATE leaves SQLAlchemy believing no
        # transaction began, so the pool skips its reset: the connection came back
        # holding the file's write lock, and every writer, in every process, waited
        # busy_timeout and failed until this process ended.
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def create_store_engine(
    url: URL,
    *,
    durability: Durability = "full",
    busy_timeout: float = 30.0,
    readonly: bool = False,
    engine_options: dict[str, Any] | None = None,
) -> Engine:
    """Create the engine for ``url``, configured for the store's transaction rules."""
    if type(busy_timeout) not in (int, float):
        raise CheckpointTypeError(
            f"busy_timeout must be a number of seconds, not {type(busy_timeout).__name__}"
        )
    if not 0 <= busy_timeout < float("inf"):  # NaN fails this too
        raise CheckpointValueError(f"busy_timeout must be >= 0 seconds, not {busy_timeout!r}")
    if type(readonly) is not bool:
        raise CheckpointTypeError(f"readonly must be a bool, not {type(readonly).__name__}")
    backend = url.get_backend_name()
    if backend == "sqlite":
        if engine_options:
            # Pool sizing, schema= and timeouts are PostgreSQL options; silently
            # ignoring them would hide a configuration mistake.
            raise CheckpointValueError(
                f"options {sorted(engine_options)} apply to PostgreSQL only, not to SQLite"
            )
        return create_sqlite_engine(
            url, durability=durability, busy_timeout=busy_timeout, readonly=readonly
        )
    if backend == "postgresql":
        from .postgres.engine import create_postgres_engine

        return create_postgres_engine(
            url, busy_timeout=busy_timeout, readonly=readonly, **(engine_options or {})
        )
    raise CheckpointValueError(
        f"unsupported database {backend!r}: use a SQLite path/URL or postgresql+psycopg://"
    )
