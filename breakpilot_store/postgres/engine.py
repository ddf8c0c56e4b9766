"""PostgreSQL: the engine factory and the advisory lock for schema changes.

The store runs on PostgreSQL with the same statements as on SQLite; what differs lives
here:

* Every transaction runs at ``READ COMMITTED``. A writer locks the session's row
  (``SELECT ... FOR UPDATE``) before it reads the session's highest seq in a later
  statement, so concurrent writers of one session queue on that lock and each sees what
  the one before committed: gapless, with no serialization failures to retry (see
  :mod:`breakpilot_store.core.counters`). A plain create does it in one statement
  that upserts (and so locks) the row and rebases it (see
  :data:`breakpilot_store.core.repository.PG_CREATE`).
* Session settings (``lock_timeout`` from ``busy_timeout``, ``statement_timeout``,
  ``search_path`` from ``schema=``, read-only) travel as libpq startup ``options``, so
  they cost no round trip. Behind PgBouncer in transaction mode (``pgbouncer=True``)
  startup options are not forwarded and a session ``SET`` would leak between clients,
  so the same settings are applied with ``set_config(..., true)`` (``SET LOCAL``) at the
  start of every transaction instead.
* The pooled connections never prepare statements (``prepare_threshold=None``): a
  server-side prepared statement belongs to one server connection, and PgBouncer in
  transaction mode hands each transaction whichever server connection is free. (The hot
  path's per-thread connections prepare theirs unless ``pgbouncer=True``: see
  :mod:`breakpilot_store.postgres.fastpath`.)
* The pool is sized by the caller (``pool_size``, ``max_overflow``, ``pool_timeout``,
  ``pool_recycle``, ``pool_pre_ping``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from ..errors import CheckpointTypeError, CheckpointValueError

#: A schema name the store accepts: a plain lower-case PostgreSQL identifier, so that
#: it reads the same unquoted in ``search_path``, in libpq options and at the psql prompt.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Defaults for the pool; every one can be overridden through ``CheckpointStore(...)``.
POOL_DEFAULTS: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 10,
    "pool_timeout": 30.0,
    # Below the idle timeouts of common proxies and load balancers (often 1 hour).
    "pool_recycle": 1800,
    # A fleet outlives server restarts and failovers: test a pooled connection before use.
    "pool_pre_ping": True,
}

#: Seconds libpq waits for the server to answer a connection attempt (unless the URL
#: says otherwise), so that an unreachable server fails fast instead of hanging.
CONNECT_TIMEOUT = 10

#: Engine options the store understands on PostgreSQL (besides the pool's).
OPTIONS = ("schema", "statement_timeout", "pgbouncer", "application_name", "connect_timeout")

# Engines created with ``schema=``: the advisory lock creates that schema if missing.
_SCHEMAS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
# pgbouncer=True engines: the statement that applies the settings in each transaction.
_PER_TRANSACTION: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()
# How to make a pool-less twin of an engine, for the advisory lock's own connection.
_DEDICATED: weakref.WeakKeyDictionary[Engine, Callable[[], Engine]] = weakref.WeakKeyDictionary()
_HOT: weakref.WeakKeyDictionary[Engine, Callable[[], Engine]] = weakref.WeakKeyDictionary()
#: The hot path's pool: unbounded, five idle connections kept (as SQLite's engine).
HOT_POOL = {"pool_size": 5, "max_overflow": -1}
# How to make an engine's asyncio twin (an ``AsyncEngine`` with the same settings).
_ASYNC_TWINS: weakref.WeakKeyDictionary[Engine, Callable[[], Any]] = weakref.WeakKeyDictionary()


def async_twin(engine: Engine) -> Any:
    """An ``AsyncEngine`` (psycopg 3's async connections) set up like ``engine``.

    Raises:
        KeyError: ``engine`` was not made by :func:`create_postgres_engine`.
    """
    return _ASYNC_TWINS[engine]()


def _seconds(value: Any, what: str, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointTypeError(f"{what} must be a number of seconds, not {value!r}")
    if not 0 <= value <= MAX_SECONDS:  # (NaN fails both)
        raise CheckpointValueError(
            f"{what} must be 0 to {MAX_SECONDS:,} seconds (PostgreSQL's longest), not {value!r}"
        )
    return float(value)


#: The longest timeout PostgreSQL takes: its settings are 32-bit milliseconds. A larger
#: one made the server refuse the connection, which read as "cannot be reached".
MAX_SECONDS = 2**31 // 1000 - 1


def _check_no_nul(url: URL, application_name: Any) -> None:
    """Refuse a NUL anywhere libpq would read the connection's parameters.

    libpq's parameters are C strings: a NUL ends the one it is in, and the settings
    after it (the ``options`` that carry ``search_path`` and the timeouts) were lost, so
    a store given ``schema=`` created its tables in ``public``.
    """
    parts = {
        "user name": url.username,
        "password": url.password,
        "host": url.host,
        "database": url.database,
        "application_name": application_name,
    }
    for key, value in url.query.items():
        parts[f"URL parameter {key!r}"] = " ".join(value) if isinstance(value, tuple) else value
    for what, value in parts.items():
        if isinstance(value, str) and "\x00" in value:
            raise CheckpointValueError(f"the PostgreSQL {what} must not contain NUL characters")


def _ms(seconds: float) -> int:
    # 0 means "do not wait" for the store but "no limit" for PostgreSQL: use 1 ms.
    return max(1, round(seconds * 1000))


def check_schema(schema: Any) -> str:
    """Check a ``schema=`` name: a lower-case identifier of at most 63 characters.

    Raises:
        CheckpointTypeError: ``schema`` is not a str.
        CheckpointValueError: It is not a plain lower-case identifier.
    """
    if not isinstance(schema, str):
        raise CheckpointTypeError(f"schema must be a str, not {type(schema).__name__}")
    if not SCHEMA_NAME.fullmatch(schema):
        raise CheckpointValueError(
            f"schema must be a lower-case identifier (letters, digits, _; at most 63 "
            f"characters, not starting with a digit), not {schema!r}"
        )
    if schema.startswith("pg_") or schema == "information_schema":
        # PostgreSQL refuses to create a pg_ schema, and its own are no place for ours.
        raise CheckpointValueError(f"schema {schema!r} is one of PostgreSQL's own; use another")
    return schema


def session_settings(
    *,
    busy_timeout: float,
    statement_timeout: float | None = None,
    schema: str | None = None,
    readonly: bool = False,
) -> dict[str, str]:
    """Return the PostgreSQL settings the store applies to every connection.

    Args:
        busy_timeout: Seconds to wait for a row or table lock (``lock_timeout``).
        statement_timeout: Seconds a statement may run, or ``None`` for the server's.
        schema: The schema to work in (``search_path``), or ``None`` for the URL's.
        readonly: Make every transaction read-only (``default_transaction_read_only``).
    """
    settings = {"lock_timeout": f"{_ms(busy_timeout)}ms"}
    if statement_timeout is not None:
        settings["statement_timeout"] = f"{_ms(statement_timeout)}ms"
    if schema is not None:
        settings["search_path"] = schema
    if readonly:
        settings["default_transaction_read_only"] = "on"
    return settings


def _startup_options(existing: str | None, settings: dict[str, str]) -> str:
    """Append ``-c name=value`` for each setting to the URL's own libpq ``options``.

    Later ``-c`` flags win, so an explicit ``schema=`` overrides a ``search_path`` in
    the URL while any other option there is kept.
    """
    flags = [f"-c {name}={value}" for name, value in settings.items()]
    return " ".join([existing, *flags] if existing else flags)


def create_postgres_engine(
    url: URL,
    *,
    busy_timeout: float = 30.0,
    readonly: bool = False,
    schema: str | None = None,
    statement_timeout: float | None = None,
    pgbouncer: bool = False,
    application_name: str | None = "breakpilot-store",
    connect_timeout: int | None = None,
    **pool_options: Any,
) -> Engine:
    """Create an engine for a ``postgresql+psycopg://`` URL, set up for the store.

    Args:
        url: The database URL (``postgresql+psycopg://``; a bare ``postgresql://``
            means psycopg 3 too). ``?options=-csearch_path=<schema>`` in it works.
        busy_timeout: Seconds to wait for another transaction's lock before the store
            raises :class:`~breakpilot_store.errors.StoreBusyError` (``lock_timeout``).
        readonly: Every transaction is read-only (``default_transaction_read_only``).
        schema: Keep the store's tables in this schema (``search_path``), so that one
            server can host several deployments. Created, if missing, the first time
            the store's schema is created. Overrides a ``search_path`` in the URL.
        statement_timeout: Seconds any one statement may run before the server cancels
            it (:class:`~breakpilot_store.errors.StoreBusyError`); ``None`` keeps the
            server's setting.
        pgbouncer: Apply the settings above per transaction (``SET LOCAL``) instead of
            as startup options, for PgBouncer in transaction mode.
        application_name: Shown in ``pg_stat_activity`` (unless the URL sets one).
        connect_timeout: Seconds to wait for a connection (default 10, unless the URL
            sets one).
        **pool_options: ``pool_size``, ``max_overflow``, ``pool_timeout``,
            ``pool_recycle``, ``pool_pre_ping`` (see :data:`POOL_DEFAULTS`).

    Raises:
        CheckpointValueError: An unknown option, or a bad value for a known one.
        CheckpointTypeError: An option of the wrong type.
    """
    unknown = sorted(set(pool_options) - set(POOL_DEFAULTS))
    if unknown:
        raise CheckpointValueError(
            f"unknown PostgreSQL engine option(s) {', '.join(unknown)}; known: "
            f"{', '.join([*OPTIONS, *POOL_DEFAULTS])}"
        )
    pool = {**POOL_DEFAULTS, **pool_options}
    for name in ("pool_size", "max_overflow"):
        if isinstance(pool[name], bool) or not isinstance(pool[name], int):
            raise CheckpointTypeError(f"{name} must be an int, not {pool[name]!r}")
    if pool["pool_size"] < 1 or pool["max_overflow"] < 0:
        raise CheckpointValueError(
            f"pool_size must be >= 1 and max_overflow >= 0, not "
            f"{pool['pool_size']!r} and {pool['max_overflow']!r}"
        )
    _seconds(pool["pool_timeout"], "pool_timeout", allow_none=False)
    if not isinstance(pool["pool_pre_ping"], bool):
        raise CheckpointTypeError(f"pool_pre_ping must be a bool, not {pool['pool_pre_ping']!r}")
    busy = _seconds(busy_timeout, "busy_timeout", allow_none=False)
    statement = _seconds(statement_timeout, "statement_timeout")
    if application_name is not None and not isinstance(application_name, str):
        raise CheckpointTypeError(
            f"application_name must be a str, not {type(application_name).__name__}"
        )
    if not isinstance(pgbouncer, bool):
        raise CheckpointTypeError(f"pgbouncer must be a bool, not {pgbouncer!r}")
    _check_no_nul(url, application_name)
    if schema is not None:
        schema = check_schema(schema)
    if url.drivername == "postgresql":  # a libpq-style URL: psycopg 3 is the driver
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise CheckpointValueError(
            f"PostgreSQL URLs must use the psycopg 3 driver: postgresql+psycopg://..., "
            f"not {url.drivername}://"
        )
    try:
        import psycopg  # noqa: F401  (a clear message beats SQLAlchemy's import error)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise CheckpointValueError(
            "PostgreSQL needs psycopg 3: pip install 'breakpilot-store[postgres]'"
        ) from exc

    if busy is None:  # allow_none=False: never, but a guard must survive python -O
        raise CheckpointValueError("busy_timeout must be a number of seconds, not None")
    settings = session_settings(
        busy_timeout=busy, statement_timeout=statement, schema=schema, readonly=readonly
    )
    connect_args: dict[str, Any] = {
        # Never prepare server-side: see the module docstring (PgBouncer).
        "prepare_threshold": None,
    }
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = (
            CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        )
    if application_name is not None and "application_name" not in url.query:
        connect_args["application_name"] = application_name
    if not pgbouncer:
        existing = url.query.get("options")
        if isinstance(existing, tuple):
            existing = " ".join(existing)
        connect_args["options"] = _startup_options(existing, settings)

    engine = _build(url, connect_args, settings if pgbouncer else None, **pool)
    # How to build its asyncio twin (same settings and pool; see postgres/aio.py).
    _ASYNC_TWINS[engine] = functools.partial(
        _build, url, connect_args, settings if pgbouncer else None, asyncio=True, **pool
    )
    # The advisory lock needs a connection of its own, outside the pool: with a pool of
    # one, holding the lock on a pooled connection would starve the migration.
    _DEDICATED[engine] = functools.partial(
        _build, url, connect_args, settings if pgbouncer else None, poolclass=NullPool
    )
    _HOT[engine] = functools.partial(
        _build, url, connect_args, settings if pgbouncer else None, **HOT_POOL
    )
    if schema is not None:
        _SCHEMAS[engine] = schema
    return engine


def hot_path_engine(engine: Engine) -> Engine:
    """A twin of ``engine`` for per-thread connections: same URL, settings, arguments.

    Its pool has no bound (each thread that calls the hot path holds one connection
    for its life) and keeps :data:`HOT_POOL`'s ``pool_size`` idle ones when threads
    end, for the next threads to take. LangGraph runs each ``invoke``'s writes on a
    new thread pool: without idle connections every ``invoke`` opened six server
    connections, ~0.3 ms per step of a 50-step graph (benchmarks/OPTIMISATIONS.md).
    """
    factory = _HOT.get(engine)
    if factory is None:
        raise ValueError(f"{engine!r} was not made by create_postgres_engine")
    return factory()


def dedicated_engine(engine: Engine) -> Engine:
    """A pool-less twin of ``engine``: same URL, settings and connect arguments.

    Each ``raw_connection()`` opens a new server connection, and closing it closes it.
    """
    factory = _DEDICATED.get(engine)
    if factory is None:
        raise ValueError(f"{engine!r} was not made by create_postgres_engine")
    return factory()


def per_transaction_statement(engine: Engine) -> Any:
    """The ``SET LOCAL`` statement of a ``pgbouncer=True`` engine, else ``None``.

    Such an engine runs it first in every transaction; otherwise the settings travel
    as startup options.
    """
    return _PER_TRANSACTION.get(engine)


def _build(
    url: URL,
    connect_args: dict[str, Any],
    per_transaction: dict[str, str] | None,
    *,
    asyncio: bool = False,
    **pool: Any,
) -> Any:
    if asyncio:
        from sqlalchemy.ext.asyncio import create_async_engine

        twin = create_async_engine(
            url.set(drivername="postgresql+psycopg_async"),
            isolation_level="READ COMMITTED",
            connect_args=connect_args,
            **pool,
        )
        engine = twin.sync_engine  # events are set on the sync engine it drives
    else:
        twin = engine = create_engine(
            url,
            isolation_level="READ COMMITTED",
            connect_args=connect_args,
            **pool,
        )
    if per_transaction is not None:
        settings = per_transaction
        names = list(settings)
        values = [settings[n] for n in names]
        # One round trip per transaction; set_config(..., true) is SET LOCAL: it ends
        # with the transaction, so nothing leaks to the next client of the server
        # connection.
        apply = text(
            "SELECT " + ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))
        ).bindparams(
            **{f"n{i}": n for i, n in enumerate(names)},
            **{f"v{i}": v for i, v in enumerate(values)},
        )

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.execute(apply)

        _PER_TRANSACTION[engine] = apply

    return twin


def lock_key_sql() -> str:
    """Return the SQL expression of the advisory lock key for the schema in use.

    Advisory locks are per database; the key adds the ``search_path``, so deployments
    in different schemas of one database never wait for each other.
    """
    return "hashtextextended('breakpilot_store.schema:' || current_setting('search_path'), 0)"


@contextlib.contextmanager
def advisory_lock(engine: Engine) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while the schema is created or upgraded.

    The lock is transaction-level (``pg_advisory_xact_lock``) on a dedicated
    connection whose transaction stays open until the block ends: the migration's own
    transaction (on another connection) commits while it is held, a crash releases it
    with the connection, and it works behind PgBouncer in transaction mode (an open
    transaction keeps its server connection; a session-level lock would not). Many
    agents opening a new database at once queue here, waiting as long as it takes (as
    on SQLite's file lock); the first creates the schema, the others find it done.

    If the engine was created with ``schema=``, that schema is created first (if
    missing), under the same lock, and committed, so the migration can create in it.
    """
    factory = _DEDICATED.get(engine)
    lock_engine = factory() if factory is not None else engine
    try:
        with lock_engine.connect() as conn:
            schema = _SCHEMAS.get(engine)
            if schema is not None:
                with conn.begin():
                    _take_lock(conn)
                    # check_schema allowed only plain identifiers: this cannot inject.
                    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
            with conn.begin():
                _take_lock(conn)
                yield
    finally:
        if lock_engine is not engine:
            lock_engine.dispose()


def _take_lock(conn: Any) -> None:
    # Waiting for the lock is not "busy": a migration may take longer than lock_timeout.
    conn.execute(
        text(
            "SELECT set_config('lock_timeout', '0', true), "
            "set_config('statement_timeout', '0', true)"
        )
    )
    conn.execute(text(f"SELECT pg_advisory_xact_lock({lock_key_sql()})"))


__all__ = [
    "POOL_DEFAULTS",
    "advisory_lock",
    "async_twin",
    "check_schema",
    "create_postgres_engine",
    "session_settings",
]
