"""Fixtures for the LangGraph integration: fresh databases on every backend."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import PG_ENV


@contextlib.contextmanager
def fresh_url(kind: str, directory: Path) -> Iterator[str]:
    """A new empty database of ``kind`` (a SQLite file, or a PostgreSQL schema)."""
    if kind == "sqlite":
        yield str(directory / f"lg-{uuid.uuid4().hex[:8]}.db")
        return
    from tests.pg_support import isolated_postgres_url

    with isolated_postgres_url(os.environ[PG_ENV], "lg") as url:
        yield url
