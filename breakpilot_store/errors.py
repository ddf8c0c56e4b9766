"""The typed errors of breakpilot_store.

Every error the public API raises derives from :class:`BreakpilotStoreError`.
Validation errors also derive from :class:`ValueError` or :class:`TypeError`, so code
written against the in-memory seed (which raised those) keeps working.
"""

from __future__ import annotations

from datetime import datetime


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
    """The database schema is at a revision this code does not know (newer), or is missing.

    Attributes:
        revision: The database's revision (``None``: it has no schema).
    """

    def __init__(self, message: str, *, revision: str | None = None) -> None:
        super().__init__(message)
        self.revision = revision


class UnsupportedDatabaseError(BreakpilotStoreError):
    """The database engine lacks a feature the store needs (e.g. SQLite older than 3.35)."""


class SessionLeasedError(BreakpilotStoreError):
    """Another holder's lease on the session is live; nothing was written.

    Attributes:
        session_id: The session.
        owner: Who holds the lease (``host:pid`` unless the holder named itself).
        token: The holder's fencing token.
        expires_at: When the lease expires unless renewed (aware UTC datetime, on the
            database's clock).
    """

    def __init__(self, session_id: str, owner: str, token: int, expires_at: datetime) -> None:
        self.session_id = session_id
        self.owner = owner
        self.token = token
        self.expires_at = expires_at
        super().__init__(
            f"session {session_id!r} is leased by {owner!r} (token {token}) until "
            f"{expires_at.isoformat()}; writes by anyone else are refused until it is "
            "released or expires"
        )


class LeaseLostError(BreakpilotStoreError):
    """This manager's lease was taken over, released or lost; nothing was written.

    Attributes:
        session_id: The session.
        token: The fencing token this manager held.
        current_token: The session's current token (``None`` if no lease row remains).
        current_owner: Who holds the session now (``None`` if nobody does).
    """

    def __init__(
        self,
        session_id: str,
        token: int,
        current_token: int | None = None,
        current_owner: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.token = token
        self.current_token = current_token
        self.current_owner = current_owner
        if reason is not None:
            why = reason
        elif current_token is not None and current_token != token:
            why = f"the session's token is now {current_token}"
            if current_owner is not None:
                why += f", held by {current_owner!r}"
        else:
            why = "the lease was released"
        super().__init__(f"lost the lease on session {session_id!r} (token {token}): {why}")


__all__ = [
    "BreakpilotStoreError",
    "CheckpointTypeError",
    "CheckpointValueError",
    "CorruptDatabaseError",
    "DatabaseError",
    "ImportConflictError",
    "ImportFormatError",
    "LeaseLostError",
    "ReadOnlyStoreError",
    "SchemaVersionError",
    "SessionLeasedError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreFullError",
    "StoreUnavailableError",
    "UnknownSessionError",
    "UnsupportedDatabaseError",
]
