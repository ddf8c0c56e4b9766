"""After ``fork()``: a child drops the connections it inherited from its parent's stores.

Sharing a SQLite or PostgreSQL connection across a fork corrupts its state, so every
store registers here while open, and a forked child forgets their pooled connections
(without closing them: they are the parent's).
"""

from __future__ import annotations

import os
import weakref
from typing import Any

# Stores alive in this process.
_LIVE_STORES: weakref.WeakSet[Any] = weakref.WeakSet()


def track(store: Any) -> None:
    """Register an open store (a ``CheckpointStore``)."""
    _LIVE_STORES.add(store)


def untrack(store: Any) -> None:
    """Forget a closed store."""
    _LIVE_STORES.discard(store)


def _after_fork_in_child() -> None:
    from .forkgate import GATE

    for store in list(_LIVE_STORES):
        if store._serial is not None:
            # Another thread may have held the turn when the process forked: no one
            # would release the child's copy.
            store._serial.forget_after_fork()
        if store._engine.dialect.name == "sqlite" and store._pins is None:
            continue  # in memory: the child's copy of the database is its own
        if store._pins is not None:
            store._pins.forget_after_fork()
        if store._pg is not None:
            store._pg.forget_after_fork()
        store._engine.dispose(close=False)
    if GATE.timed_out:
        return  # another thread may be inside SQLite: closing could hang on its mutex
    # Dereferencing them is not enough for SQLite: see close_inherited_connections.
    from .engine import close_inherited_connections

    close_inherited_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
