"""Helpers of the migration tests: a database brought to an older revision."""

from __future__ import annotations

from pathlib import Path

from breakpilot_store.engine import create_store_engine, resolve_url
from breakpilot_store.migrate import upgrade


def at_revision(url: str | Path, revision: str) -> None:
    """Create (or upgrade) the database at ``url`` up to ``revision``, and let go of it."""
    engine = create_store_engine(resolve_url(url))
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()
