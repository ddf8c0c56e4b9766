"""PostgreSQL fixtures: a real server, a schema of its own for every test.

These tests never skip in CI: with ``CI=true`` a missing ``BREAKPILOT_TEST_POSTGRES_URL``
or an unreachable server fails every test here, loudly. Outside CI they are skipped only
when the variable is unset (a developer without a server); if it is set, the server must
answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.pg_support import (
    admin_connect,
    drop_schema,
    isolated_schema,
    libpq_url,
    raw_postgres,
    unique_schema,
    with_schema,
)

PG_ENV = "BREAKPILOT_TEST_POSTGRES_URL"


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, as .ci/run and most CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The server's URL from the environment, checked to answer."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        if in_ci():
            pytest.fail(
                f"CI=true but {PG_ENV} is not set: the PostgreSQL tests must run in CI "
                "(.ci/run exports it for the server on 127.0.0.1:5432)",
                pytrace=False,
            )
        pytest.skip(f"{PG_ENV} is not set (CI sets it; see .ci/run)")
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at {PG_ENV}={url!r} is unreachable: {exc}", pytrace=False)
    return url


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[str]:
    """A fresh, empty schema (dropped with everything in it afterwards)."""
    with isolated_schema(pg_base_url) as schema:
        yield schema


@pytest.fixture
def pg_url(pg_base_url: str, pg_schema: str) -> str:
    """A store URL confined to :func:`pg_schema` via ``?options=-csearch_path=...``."""
    return with_schema(pg_base_url, pg_schema)


@pytest.fixture
def fresh_schema_name(pg_base_url: str) -> Iterator[str]:
    """A unique schema name that does not exist yet (dropped afterwards if created)."""
    name = unique_schema("new")
    yield name
    drop_schema(pg_base_url, name)


@pytest.fixture
def pg_raw(pg_url: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run a query on a separate plain psycopg connection in the test's schema."""
    conn = raw_postgres(pg_url)

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.rollback()

    yield query
    conn.close()


@pytest.fixture
def pg_admin(pg_base_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server (for DDL and for killing backends)."""
    with admin_connect(pg_base_url) as conn:
        yield conn
