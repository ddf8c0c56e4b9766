"""The typed errors of breakpilot_store.

Every error the public API raises derives from :class:`BreakpilotStoreError`.
Validation errors also derive from :class:`ValueError` or :class:`TypeError`, so code
written against the in-memory seed (which raised those) keeps working.
"""

from __future__ import annotations


class BreakpilotStoreError(Exception):
    """Base class of every error raised by breakpilot_store."""


class CheckpointValueError(BreakpilotStoreError, ValueError):
    """A value passed to the API is not acceptable (empty name, NaN, bad id, ...)."""


class CheckpointTypeError(BreakpilotStoreError, TypeError):
    """A value passed to the API has the wrong type (naive datetime, set, tuple, ...)."""


class ImportFormatError(CheckpointValueError):
    """An import document is malformed; nothing was written."""


class ImportConflictError(BreakpilotStoreError, ValueError):
    """An imported checkpoint differs from the one already stored under the same id."""


class UnknownSessionError(BreakpilotStoreError, LookupError):
    """The named session does not exist in the store."""


class StoreClosedError(BreakpilotStoreError):
    """The store was closed and cannot be used any more."""


class DatabaseError(BreakpilotStoreError):
    """The database refused an operation; the original driver error is ``__cause__``."""


class StoreBusyError(DatabaseError):
    """Another connection held a lock longer than ``busy_timeout``; nothing was written."""


class StoreFullError(DatabaseError):
    """The disk (or the database's page limit) is full; nothing was written."""


class ReadOnlyStoreError(DatabaseError):
    """The database, its directory, or the store itself is read-only."""


class StoreUnavailableError(DatabaseError):
    """The database cannot be opened or reached (missing directory, server down, ...)."""


class CorruptDatabaseError(DatabaseError):
    """The file is not a database, or it is damaged."""


class SchemaVersionError(BreakpilotStoreError):
    """The database schema is at a revision this code does not know (newer), or is missing."""


class UnsupportedDatabaseError(BreakpilotStoreError):
    """The database engine lacks a feature the store needs (e.g. SQLite older than 3.35)."""


__all__ = [
    "BreakpilotStoreError",
    "CheckpointTypeError",
    "CheckpointValueError",
    "CorruptDatabaseError",
    "DatabaseError",
    "ImportConflictError",
    "ImportFormatError",
    "ReadOnlyStoreError",
    "SchemaVersionError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreFullError",
    "StoreUnavailableError",
    "UnknownSessionError",
    "UnsupportedDatabaseError",
]
