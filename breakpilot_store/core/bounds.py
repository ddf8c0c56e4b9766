"""Checks on the public API's filter arguments: prefixes, durations, moments.

Each turns an argument into what the query needs, or says that nothing can match, so
that a value at the edge of its type means the same on every backend: a prefix longer
than any id (SQLite refuses a LIKE pattern over 50,000 characters, PostgreSQL answers
``[]``), a duration reaching before year 1, a moment whose UTC form is before year 1 or
after 9999. Wrong types and unencodable text (lone surrogates) are typed errors.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..codec import MAX_KEY_LENGTH, check_key
from ..errors import CheckpointTypeError, CheckpointValueError

#: "Nothing can match": the query need not run.
NOTHING = object()


def check_prefix(prefix: Any) -> Any:
    """Check a session-id prefix.

    Returns:
        The prefix, ``None`` (no filter), or :data:`NOTHING` when no session id can
        start with it (longer than an id may be, or with a NUL, which no id holds).

    Raises:
        CheckpointTypeError: Not a str.
        CheckpointValueError: It holds a lone surrogate (not encodable text).
    """
    if prefix is None or prefix == "":
        return None
    if not isinstance(prefix, str):
        raise CheckpointTypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if len(prefix) > MAX_KEY_LENGTH or "\x00" in prefix:
        check_text(prefix, "prefix")
        return NOTHING
    return check_key(prefix, "prefix")


def check_text(value: str, what: str) -> str:
    """Refuse a str that cannot be encoded as UTF-8 (a lone surrogate).

    Raises:
        CheckpointValueError: Naming ``what``.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointValueError(f"{what} contains a lone surrogate: {value[:80]!r}") from exc
    return value


def idle_cutoff(now: datetime, idle_for: Any, *, positive: bool = False) -> Any:
    """Return the moment before which a session's last write makes it idle.

    Args:
        now: The current time (aware).
        idle_for: A ``timedelta``.
        positive: Refuse a zero or negative duration (``prune_sessions``).

    Returns:
        The cutoff; :data:`NOTHING` if it is before year 1 (no session is that idle);
        ``None`` if it is after year 9999 (every session is).

    Raises:
        CheckpointTypeError: ``idle_for`` is not a ``timedelta``.
        CheckpointValueError: ``positive`` and it is not.
    """
    if not isinstance(idle_for, timedelta):
        raise CheckpointTypeError(f"idle_for must be a timedelta, not {type(idle_for).__name__}")
    if positive and idle_for <= timedelta(0):
        raise CheckpointValueError(f"idle_for must be positive, not {idle_for}")
    try:
        return now - idle_for
    except OverflowError:
        return NOTHING if idle_for > timedelta(0) else None


_LOW = datetime.min.replace(tzinfo=timezone.utc)
_HIGH = datetime.max.replace(tzinfo=timezone.utc)


def in_utc(value: datetime) -> tuple[datetime | None, int]:
    """Return ``(value in UTC, 0)``, or ``(None, -1 / +1)`` below year 1 / above 9999.

    ``datetime(1, 1, 1, tzinfo=+01:00)`` is a moment before every timestamp a store
    can hold, but converting it to UTC overflows.
    """
    try:
        return value.astimezone(timezone.utc), 0
    except OverflowError:
        return None, (-1 if value.replace(tzinfo=None) < datetime(2000, 1, 1) else 1)


def time_filters(after: datetime | None, start: datetime | None, end: datetime | None) -> Any:
    """Bounds for ``list_checkpoints`` in UTC (aware datetimes already checked).

    Returns:
        ``{"after": ..., "start": ..., "end": ...}`` (``None``: no bound), or
        :data:`NOTHING` when no timestamp can satisfy them.
    """
    bounds: dict[str, datetime | None] = {"after": None, "start": None, "end": None}
    for key, value in (("after", after), ("start", start)):
        if value is None:
            continue
        moment, side = in_utc(value)
        if side > 0:
            return NOTHING  # after every storable timestamp
        if moment is not None and moment >= _HIGH and key == "after":
            return NOTHING
        bounds[key] = moment  # None below year 1: no lower bound
    if end is not None:
        moment, side = in_utc(end)
        if side < 0:
            return NOTHING  # before every storable timestamp
        bounds["end"] = moment  # None above 9999: no upper bound
    return bounds
