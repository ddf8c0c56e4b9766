"""SQLite upkeep that must run outside any transaction: the WAL checkpoint."""

from __future__ import annotations

import sqlite3

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..forkgate import GATE
from ..translate import translate, translate_driver


def wal_checkpoint(engine: Engine, where: str, mode: str) -> tuple[int, int, int]:
    """Run SQLite's WAL checkpoint in ``mode`` on a bare pooled connection.

    Args:
        engine: A SQLite engine.
        where: How errors name the database.
        mode: ``PASSIVE``, ``FULL``, ``RESTART`` or ``TRUNCATE`` (already checked).

    Returns:
        SQLite's ``(busy, wal_pages, checkpointed_pages)``.
    """
    try:
        # On the bare driver connection: SQLAlchemy would open a transaction first,
        # and a checkpoint cannot finish inside one.
        with GATE:  # no fork while SQLite runs it (see forkgate)
            raw = engine.raw_connection()
            try:
                row = raw.driver_connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                raw.close()
    except SQLAlchemyError as exc:
        raise translate(exc, where) from exc
    except sqlite3.Error as exc:  # the bare driver raises its own errors
        raise translate_driver(exc, where) from exc
    return (int(row[0]), int(row[1]), int(row[2]))
