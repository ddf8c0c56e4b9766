"""Translate driver exceptions into the store's typed errors, in one place.

The store's transaction scope calls :func:`translate`; the original exception stays
attached as ``__cause__``.
"""

from __future__ import annotations

import errno
import os

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .errors import (
    CorruptDatabaseError,
    DatabaseError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreFullError,
    StoreUnavailableError,
)

# SQLite primary result codes (the low byte of the extended code).
_SQLITE_ERRORS: dict[int, tuple[type[DatabaseError], str]] = {
    5: (
        StoreBusyError,
        "is locked by another connection (waited busy_timeout); nothing was written",
    ),
    6: (StoreBusyError, "has a table locked by another connection; nothing was written"),
    8: (ReadOnlyStoreError, "is read-only (file or directory permissions); nothing was written"),
    11: (CorruptDatabaseError, "is damaged (database disk image is malformed)"),
    13: (StoreFullError, "is full (disk or page limit); nothing was written"),
    14: (StoreUnavailableError, "cannot be opened (missing directory or no permission)"),
    # Only from a SQLite built with a lower SQLITE_MAX_LENGTH than codec.MAX_VALUE_BYTES.
    18: (DatabaseError, "refused a value longer than its SQLITE_MAX_LENGTH; nothing was written"),
    26: (CorruptDatabaseError, "is not a SQLite database (or is encrypted or truncated)"),
}

_SQLITE_CANTOPEN = 14
_NO_DESCRIPTORS = (
    "cannot be opened: this process has no file descriptor left (limit {limit}; each "
    "thread that writes keeps a connection open, with its -wal and -shm: fewer live "
    "threads, or a higher RLIMIT_NOFILE); nothing was written"
)


def _out_of_descriptors() -> bool:
    """Whether opening any file fails for want of descriptors (SQLite only says CANTOPEN)."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    os.close(fd)
    return False


def _descriptor_limit() -> str:
    try:
        import resource  # (POSIX only)

        return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):
        return "unknown"


# PostgreSQL SQLSTATEs.
_PG_ERRORS: dict[str, tuple[type[DatabaseError], str]] = {
    "55P03": (StoreBusyError, "is locked by another session (lock_timeout); nothing was written"),
    "57014": (StoreBusyError, "cancelled the statement (statement_timeout); nothing was written"),
    "40P01": (StoreBusyError, "detected a deadlock; nothing was written"),
    "53100": (StoreFullError, "is out of disk space; nothing was written"),
    "25006": (ReadOnlyStoreError, "is read-only; nothing was written"),
    "3D000": (StoreUnavailableError, "does not exist"),
    # The server closed the connection (a restart, pg_terminate_backend).
    "57P01": (StoreUnavailableError, "closed the connection (shutdown or terminated)"),
    "57P02": (StoreUnavailableError, "closed the connection (crash shutdown)"),
    "57P03": (StoreUnavailableError, "cannot connect now (starting up or shutting down)"),
    "28000": (StoreUnavailableError, "refused the login"),
    "28P01": (StoreUnavailableError, "refused the password"),
}


def translate(exc: SQLAlchemyError, where: str) -> DatabaseError:
    """Return the typed error for a SQLAlchemy/driver exception raised on ``where``.

    Args:
        exc: The exception SQLAlchemy raised.
        where: How to name the database in the message (a path, or a URL without password).
    """
    if isinstance(exc, PoolTimeoutError):
        # Every pooled connection stayed checked out for pool_timeout seconds.
        return StoreBusyError(
            f"database {where}: no free connection in the pool within pool_timeout "
            f"(PostgreSQL stores: raise pool_size/max_overflow, or use fewer threads at "
            f"once); nothing was written ({exc})"
        )
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    detail = str(orig if orig is not None else exc).strip().splitlines()[0]
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _SQLITE_ERRORS:
        cls, what = _SQLITE_ERRORS[code & 0xFF]
        if code & 0xFF == _SQLITE_CANTOPEN and _out_of_descriptors():
            what = _NO_DESCRIPTORS.format(limit=_descriptor_limit())
        return cls(f"database {where} {what} ({detail})")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _PG_ERRORS:
        cls, what = _PG_ERRORS[sqlstate]
        return cls(f"database {where} {what} ({detail})")
    if (
        isinstance(exc, DBAPIError)
        and exc.connection_invalidated
        or (
            orig is not None
            and type(orig).__name__ == "OperationalError"
            and sqlstate is None
            and code is None
        )
    ):
        return StoreUnavailableError(f"database {where} cannot be reached ({detail})")
    if orig is not None and type(orig).__name__ == "DataError" and sqlstate is None:
        # Raised by psycopg itself, reading a row: a stored value Python cannot hold
        # ('infinity' as a timestamp, set by hand).
        return CorruptDatabaseError(
            f"database {where} holds a value this store cannot read ({detail}); it was "
            "not written by this store: `breakpilot-store doctor` lists such rows"
        )
    return DatabaseError(f"database {where} refused the operation ({detail})")


def translate_driver(exc: Exception, where: str) -> DatabaseError:
    """Like :func:`translate`, for an exception raised by the bare driver."""
    return translate(DBAPIError(None, None, exc), where)
