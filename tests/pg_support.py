"""PostgreSQL helpers for the tests: a throwaway schema per test, and raw connections.

Every test that touches PostgreSQL works in a schema of its own, named uniquely and
dropped (with everything in it) afterwards, so runs never see each other's rows and
can run in parallel against one server.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

#: Prefix of every schema the tests create (so a leftover one is easy to recognise).
SCHEMA_PREFIX = "bp_test_"


def libpq_url(url: str) -> str:
    """Return ``url`` as a libpq URL (``postgresql://``), without the SQLAlchemy driver."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def url_schema(url: str) -> str | None:
    """Return the ``search_path`` that ``?options=-csearch_path=...`` in ``url`` sets."""
    for key, value in parse_qsl(urlsplit(url).query):
        if key == "options":
            for flag in value.replace("-c ", "-c").split():
                if flag.startswith("-csearch_path="):
                    return flag.split("=", 1)[1]
    return None


def with_schema(url: str, schema: str) -> str:
    """Return ``url`` with ``options=-csearch_path=<schema>`` (replacing any options)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit((*parts[:3], urlencode(query), parts[4]))


def admin_connect(base_url: str) -> psycopg.Connection[Any]:
    """Connect to the server of ``base_url`` in autocommit mode (for DDL)."""
    return psycopg.connect(libpq_url(base_url), autocommit=True, connect_timeout=10)


def unique_schema(tag: str = "") -> str:
    """Return a fresh schema name: the prefix, the pid, an optional tag and a random part."""
    tag = f"{tag}_" if tag else ""
    return f"{SCHEMA_PREFIX}{tag}{os.getpid()}_{uuid.uuid4().hex[:10]}"


def drop_schema(base_url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it, if it exists."""
    with admin_connect(base_url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def isolated_schema(base_url: str, tag: str = "", *, create: bool = True) -> Iterator[str]:
    """Yield a unique schema name (created unless ``create=False``); drop it afterwards."""
    schema = unique_schema(tag)
    if create:
        with admin_connect(base_url) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        drop_schema(base_url, schema)


@contextlib.contextmanager
def isolated_postgres_url(base_url: str, tag: str = "") -> Iterator[str]:
    """Yield a store URL confined to a fresh schema; the schema is dropped afterwards.

    The URL carries ``?options=-csearch_path=<schema>``, so both the store and a raw
    connection opened from it (:func:`raw_postgres`) see only that schema.
    """
    with isolated_schema(base_url, tag) as schema:
        yield with_schema(base_url, schema)


def raw_postgres(url: str) -> psycopg.Connection[Any]:
    """Open a plain psycopg connection to the database and schema of a store URL.

    Not in autocommit mode: the caller's ``rollback()`` after each check ends the
    snapshot, as the conftest's ``RawDB`` does.
    """
    return psycopg.connect(libpq_url(url), connect_timeout=10)


__all__ = [
    "admin_connect",
    "drop_schema",
    "isolated_postgres_url",
    "isolated_schema",
    "libpq_url",
    "raw_postgres",
    "unique_schema",
    "url_schema",
    "with_schema",
]
