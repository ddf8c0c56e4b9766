"""breakpilot_store: a persistent checkpoint store for AI agents."""

from .aio import AsyncCheckpointStore
from .aio_manager import AsyncCheckpointManager
from .checkpoint import Checkpoint
from .core.document import read_document
from .core.repository import SessionInfo
from .errors import (
    BreakpilotStoreError,
    CheckpointTypeError,
    CheckpointValueError,
    CorruptDatabaseError,
    DatabaseError,
    ImportConflictError,
    ImportFormatError,
    LeaseLostError,
    ReadOnlyStoreError,
    SchemaVersionError,
    SessionLeasedError,
    StoreBusyError,
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
    UnknownSessionError,
    UnsupportedDatabaseError,
)
from .manager import CheckpointManager
from .store import CheckpointStore

__version__ = "0.1.0"

__all__ = [
    "AsyncCheckpointManager",
    "AsyncCheckpointStore",
    "BreakpilotStoreError",
    "Checkpoint",
    "CheckpointManager",
    "CheckpointStore",
    "CheckpointTypeError",
    "CheckpointValueError",
    "CorruptDatabaseError",
    "DatabaseError",
    "ImportConflictError",
    "ImportFormatError",
    "LeaseLostError",
    "ReadOnlyStoreError",
    "SchemaVersionError",
    "SessionInfo",
    "SessionLeasedError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreFullError",
    "StoreUnavailableError",
    "UnknownSessionError",
    "UnsupportedDatabaseError",
    "__version__",
    "read_document",
]
