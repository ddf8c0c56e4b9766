"""The product contender: ``breakpilot_store`` through its public API only.

Everything timed goes through ``CheckpointStore`` / ``CheckpointManager``, as an agent
would use them. The big databases that the read, cold-restart and bulk workloads
need are filled untimed: when the store's own schema (made by its migrations) has
exactly (a)'s columns and no triggers, rows are inserted in bulk with raw SQL, as
(a)'s ``create`` would write them, and then checked through the API (latest id and
payload of the first and last session); otherwise every row goes through ``create``.

``retention="default"`` is the manager's defaults (``max_checkpoints=100``,
``compress_after=50``); ``"off"`` passes ``compress_after=max_checkpoints=10**9``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from benchmarks.contenders.base import NO_RETENTION, Durability, Retention
from benchmarks.contenders.raw_sqlite import bulk_fill, expected_schema, schema_of
from benchmarks.payload import name_for, payload_for

try:
    from breakpilot_store import CheckpointManager, CheckpointStore
except Exception as exc:  # noqa: BLE001 - any failure means "not available yet"
    IMPORT_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

COLD_RESTART_CODE = """\
import sys
from breakpilot_store import CheckpointManager, CheckpointStore
store = CheckpointStore(sys.argv[1])
cp = CheckpointManager(sys.argv[2], store=store).get_latest()
store.close()
assert cp.data["step"] > 0
"""


class StoreWriter:
    """Adapter: ``create`` returns the id."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def create(self, name: str, data: dict[str, Any]) -> str:
        """``CheckpointManager.create``: one durable transaction."""
        return str(self._manager.create(name, data).id)


class StoreBackend:
    """One ``CheckpointStore`` and a manager per session (made on first use)."""

    def __init__(self, path: str, durability: Durability) -> None:
        self._path = path
        self._store = CheckpointStore(path, durability=durability)
        self._managers: dict[tuple[str, Retention], Any] = {}

    def _manager(self, session_id: str, retention: Retention = "default") -> Any:
        key = (session_id, retention)
        manager = self._managers.get(key)
        if manager is None:
            kwargs = NO_RETENTION if retention == "off" else {}
            manager = CheckpointManager(session_id, store=self._store, **kwargs)
            self._managers[key] = manager
        return manager

    def writer(self, session_id: str, retention: Retention = "default") -> StoreWriter:
        """A manager for the session with the given retention."""
        return StoreWriter(self._manager(session_id, retention))

    def get_latest(self, session_id: str) -> Any:
        """``CheckpointManager.get_latest()``."""
        return self._manager(session_id).get_latest()

    def get(self, session_id: str, seq: int) -> Any:
        """``CheckpointManager.get('session:seq')``."""
        return self._manager(session_id).get(f"{session_id}:{seq}")

    def export(self, session_id: str) -> str:
        """``CheckpointManager.export()``."""
        return str(self._manager(session_id, "off").export())

    def import_(self, session_id: str, text: str) -> int:
        """``CheckpointManager.import_checkpoints()``."""
        return int(self._manager(session_id, "off").import_checkpoints(text))

    def fill(self, sessions: list[tuple[int, str]], per_session: int) -> None:
        """Bulk SQL on the store's own schema if it matches (a)'s, else ``create``."""
        if sessions and self._fast_fill(sessions, per_session):
            return
        for index, session_id in sessions:
            manager = self._manager(session_id, "off")
            for step in range(1, per_session + 1):
                manager.create(name_for(index, step), payload_for(index, step))

    def _fast_fill(self, sessions: list[tuple[int, str]], per_session: int) -> bool:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            if schema_of(conn) != expected_schema():
                return False
            bulk_fill(conn, sessions, per_session)
        finally:
            conn.close()
        for index, session_id in (sessions[0], sessions[-1]):
            latest = self._manager(session_id).get_latest()
            if (
                latest is None
                or latest.id != f"{session_id}:{per_session}"
                or latest.data != payload_for(index, per_session)
            ):
                raise RuntimeError(f"bulk-filled session {session_id!r} reads back wrong")
        return True

    def close(self) -> None:
        """``CheckpointStore.close()``."""
        self._managers.clear()
        self._store.close()


class StoreContender:
    """The product."""

    key = "store"
    label = "store (breakpilot_store)"
    durable = True

    def open(self, path: str, durability: Durability) -> StoreBackend:
        """``CheckpointStore(path, durability=...)``."""
        return StoreBackend(path, durability)

    def cold_restart_code(self) -> str | None:
        """Import the package, open the store, ``get_latest`` of one session."""
        return COLD_RESTART_CODE
