"""Alembic glue: find the migrations, check the schema revision, upgrade under a lock.

Opening a store costs one query in the common case (the schema is at head). Alembic is
imported only when the schema actually has to be created or upgraded, which keeps a
cold start (an agent restarting) fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .engine import WRITE, sqlite_path
from .errors import SchemaVersionError

#: The revision this code's schema is at (``migrations/versions``); a test keeps it
#: equal to alembic's head, so no alembic import is needed to know it.
HEAD = "0008"

#: Every revision this code knows, oldest first. A database at any other is refused.
KNOWN_REVISIONS = ("0001", "0002", "0005", "0003", "0004", "0006", "0007", "0008")

_VERSION_QUERY = text("SELECT version_num FROM alembic_version")


def migrations_path() -> Path:
    """Return the migrations directory: inside the installed package, else the checkout."""
    packaged = resources.files("breakpilot_store") / "migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    # A source checkout (or editable install): alembic's usual top-level folder.
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """Build an alembic ``Config`` in code (no ``alembic.ini`` needed at run time).

    Args:
        url: The database URL for alembic commands that open their own connection.
        connection: A connection (inside a transaction) for the migrations to use.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revision(conn: Connection) -> str | None:
    """Return the database's schema revision, or ``None`` if it has no schema yet."""
    if conn.dialect.name == "postgresql":
        exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        if exists is None:
            return None
        return conn.execute(_VERSION_QUERY).scalar()
    try:
        return conn.execute(_VERSION_QUERY).scalar()
    except DBAPIError as exc:
        if "no such table" in str(exc.orig):
            return None
        raise


def describe(url: URL) -> str:
    """Name a database for messages, without its password."""
    path = sqlite_path(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def check_known(revision: str | None, url: URL) -> None:
    """Refuse a database whose revision this code does not know (made by newer code).

    Raises:
        SchemaVersionError: Naming both the database's revision and this code's head.
    """
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise SchemaVersionError(
            f"database {describe(url)} is at schema revision {revision!r}, which this "
            f"version of breakpilot_store does not know (its newest is {HEAD!r}); "
            "upgrade breakpilot_store to open it. Nothing was written.",
            revision=revision,
        )


@contextlib.contextmanager
def schema_lock(engine: Engine, url: URL) -> Iterator[None]:
    """Hold the lock that serialises schema creation/upgrade among many openers.

    SQLite: a sidecar ``<file>.lock`` file lock. PostgreSQL: an advisory lock.
    An in-memory SQLite database has a single opener and needs none.
    """
    path = sqlite_path(url)
    if path is not None:
        from filelock import FileLock

        with FileLock(f"{path}.lock"):
            yield
        return
    if engine.dialect.name == "postgresql":
        from .postgres.engine import advisory_lock

        with advisory_lock(engine):
            yield
        return
    yield


def _lift_statement_timeout(conn: Connection) -> None:
    # PostgreSQL: a schema change may outlast the store's statement_timeout (a setting
    # for agents' calls); SET LOCAL lifts it for this transaction only.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def upgrade(engine: Engine, target: str = "head") -> None:
    """Run the migrations up to ``target`` in one transaction (all or nothing)."""
    from alembic import command

    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            _lift_statement_timeout(conn)
            command.upgrade(alembic_config(connection=conn), target)


def downgrade(engine: Engine, target: str = "base") -> None:
    """Run the migrations down to ``target`` in one transaction (all or nothing)."""
    from alembic import command

    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            _lift_statement_timeout(conn)
            command.downgrade(alembic_config(connection=conn), target)


def read_revision(engine: Engine) -> str | None:
    """Return the database's revision in a short read transaction of its own."""
    with engine.connect() as conn, conn.begin():
        return current_revision(conn)


def ensure_schema(engine: Engine, url: URL, *, migrate: bool = True) -> str:
    """Bring the schema to :data:`HEAD`, or check that it is there.

    Args:
        engine: The store's engine.
        url: The database URL (for messages and the lock).
        migrate: Create/upgrade if needed; with ``False`` only check.

    Returns:
        The revision the database is at afterwards (always :data:`HEAD`).

    Raises:
        SchemaVersionError: The database is newer than this code, or (with
            ``migrate=False``) has no schema or an older one.
    """
    revision = read_revision(engine)
    if revision == HEAD:
        return HEAD
    check_known(revision, url)
    if not migrate:
        state = (
            "has no breakpilot_store schema"
            if revision is None
            else (f"is at schema revision {revision!r}, older than this code's {HEAD!r}")
        )
        raise SchemaVersionError(
            f"database {describe(url)} {state}; open it with migrate=True or run "
            "`breakpilot-store db upgrade`",
            revision=revision,
        )
    with schema_lock(engine, url):
        # Another opener may have done the work while this one waited for the lock.
        revision = read_revision(engine)
        check_known(revision, url)
        if revision != HEAD:
            upgrade(engine)
    return HEAD
