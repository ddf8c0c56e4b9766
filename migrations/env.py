"""Alembic environment for breakpilot_store.

Two ways in:
* from code (``breakpilot_store.migrate``): a connection already inside a write
  transaction arrives in ``config.attributes["connection"]``; everything runs in it.
* from the command line (``alembic upgrade head`` at the repo root): the URL comes from
  ``-x url=...``, else ``$BREAKPILOT_STORE_URL``, else ``sqlalchemy.url``; the engine is
  built by the store's own factory, so SQLite gets the same PRAGMAs and BEGIN IMMEDIATE.

All migrations of one run share a single transaction: SQLite and PostgreSQL both have
transactional DDL, so a process killed mid-upgrade leaves the old revision intact.
"""

from __future__ import annotations

import os

from alembic import context

from breakpilot_store.engine import WRITE, create_store_engine, resolve_url
from breakpilot_store.schema import VIEW_NAMES, metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN201
    # Views are created by hand in the migrations; autogenerate must not see them as tables.
    return not (type_ == "table" and name in VIEW_NAMES)


def _configure_and_run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        transaction_per_migration=False,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("BREAKPILOT_STORE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("no database: pass -x url=... or set BREAKPILOT_STORE_URL")
    engine = create_store_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; run against a database")
run_migrations_online()
