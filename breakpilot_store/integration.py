"""The store argument the framework integrations accept, resolved to an async store.

``BreakpilotSession(..., store=...)`` and ``BreakpilotSessionService(store)`` take a
path or URL, a :class:`CheckpointStore`, an :class:`AsyncCheckpointStore`, or ``None``
(the default store); all of them run their operations through
:meth:`AsyncCheckpointStore.run`.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import URL

from .aio import AsyncCheckpointStore
from .errors import CheckpointTypeError
from .store import CheckpointStore

#: What the integrations accept as their ``store`` argument.
StoreArg = str | os.PathLike[str] | URL | CheckpointStore | AsyncCheckpointStore | None


def async_store(store: Any) -> tuple[AsyncCheckpointStore, bool]:
    """Resolve a ``store`` argument.

    Returns:
        ``(async_store, owned)``: ``owned`` when it was made here, so the caller closes
        it: from a path, URL or ``None``, or an async front over a sync store (closing
        the front stops its threads and leaves the sync store open). An
        :class:`AsyncCheckpointStore` passed in stays the caller's.

    Raises:
        CheckpointTypeError: ``store`` is none of the accepted kinds.
    """
    if isinstance(store, AsyncCheckpointStore):
        return store, False
    if isinstance(store, CheckpointStore):
        return AsyncCheckpointStore.wrap(store), True
    if store is None or isinstance(store, str | os.PathLike | URL):
        return AsyncCheckpointStore(store), True
    raise CheckpointTypeError(
        "store must be a path or URL, a CheckpointStore, an AsyncCheckpointStore or None, "
        f"not {type(store).__name__}"
    )
