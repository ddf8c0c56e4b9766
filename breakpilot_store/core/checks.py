"""Argument checks shared by the sync and async fronts (cheap: no I/O, no encoding)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..errors import CheckpointTypeError, CheckpointValueError


def now() -> datetime:
    """The current time, UTC, as every write records it."""
    return datetime.now(timezone.utc)


def positive_int(value: Any, what: str) -> int:
    """Check that ``value`` is an ``int`` >= 1 (not a bool).

    Raises:
        CheckpointTypeError: Not an int.
        CheckpointValueError: Below 1.
    """
    if type(value) is not int:
        raise CheckpointTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 1:
        raise CheckpointValueError(f"{what} must be a positive int, not {value}")
    return value


def optional_limit(value: Any, what: str) -> int | None:
    """:func:`positive_int`, or ``None``."""
    return None if value is None else positive_int(value, what)


def aware(value: Any, what: str) -> datetime:
    """Check that ``value`` is a timezone-aware datetime.

    Raises:
        CheckpointTypeError: ``value`` is not a datetime or is naive.
    """
    if not isinstance(value, datetime):
        raise CheckpointTypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CheckpointTypeError(
            f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), "
            f"got naive {value.isoformat()}"
        )
    return value


def checkpoint_id(value: Any) -> str:
    """Check that a checkpoint id is a str (its form is checked by ``split_id``)."""
    if not isinstance(value, str):
        raise CheckpointTypeError(f"checkpoint_id must be a str, not {type(value).__name__}")
    return value


def wal_mode(mode: Any) -> str:
    """Check and normalise a WAL checkpoint mode."""
    if not isinstance(mode, str):
        raise CheckpointTypeError(f"WAL checkpoint mode must be a str, not {type(mode).__name__}")
    mode = mode.upper()
    if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        raise CheckpointValueError(f"unknown WAL checkpoint mode {mode!r}")
    return mode
