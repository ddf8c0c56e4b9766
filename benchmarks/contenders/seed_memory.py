"""Comparator (c): the seed's in-memory manager (no durability; the ceiling for create).

``path`` and ``durability`` are ignored: nothing is written anywhere. ``get`` is the
seed's linear scan, so it is no ceiling for point reads by id.
"""

from __future__ import annotations

from typing import Any

from benchmarks.contenders.base import NO_RETENTION, Durability, Retention
from benchmarks.payload import name_for, payload_for
from benchmarks.seed_reference import Checkpoint, SeedCheckpointManager


class SeedWriter:
    """Adapter: ``create`` returns the id."""

    def __init__(self, manager: SeedCheckpointManager) -> None:
        self._manager = manager

    def create(self, name: str, data: dict[str, Any]) -> str:
        """The seed's ``create`` (stores ``data`` by reference)."""
        return self._manager.create(name, data).id


class SeedBackend:
    """A dict of seed managers, one per session."""

    def __init__(self) -> None:
        self._managers: dict[str, SeedCheckpointManager] = {}

    def _manager(self, session_id: str, retention: Retention) -> SeedCheckpointManager:
        # One manager per session (the seed keeps the session in the manager); asking
        # with another retention re-targets it, as a new manager would on a real store.
        manager = self._managers.get(session_id)
        if manager is None:
            manager = SeedCheckpointManager(session_id)
            self._managers[session_id] = manager
        if retention == "off":
            manager.compress_after = NO_RETENTION["compress_after"]
            manager.max_checkpoints = NO_RETENTION["max_checkpoints"]
        else:
            manager.compress_after, manager.max_checkpoints = 50, 100
        return manager

    def writer(self, session_id: str, retention: Retention = "default") -> SeedWriter:
        """The session's manager (created with the seed's defaults or without retention)."""
        return SeedWriter(self._manager(session_id, retention))

    def get_latest(self, session_id: str) -> Checkpoint | None:
        """The last element of the list."""
        manager = self._managers.get(session_id)
        return None if manager is None else manager.get_latest()

    def get(self, session_id: str, seq: int) -> Checkpoint | None:
        """The seed's linear scan by id."""
        manager = self._managers.get(session_id)
        return None if manager is None else manager.get(f"{session_id}:{seq}")

    def export(self, session_id: str) -> str:
        """The seed's export."""
        return self._manager(session_id, "off").export()

    def import_(self, session_id: str, text: str) -> int:
        """The seed's import (appends, keeps the foreign ids)."""
        return self._manager(session_id, "off").import_checkpoints(text)

    def fill(self, sessions: list[tuple[int, str]], per_session: int) -> None:
        """Create every checkpoint through the seed's manager, retention off."""
        for index, session_id in sessions:
            manager = self._manager(session_id, "off")
            for step in range(1, per_session + 1):
                manager.create(name_for(index, step), payload_for(index, step))

    def close(self) -> None:
        """Drop everything (the seed's whole durability story)."""
        self._managers.clear()


class SeedContender:
    """Comparator (c)."""

    key = "c"
    label = "(c) seed, in memory"
    durable = False

    def open(self, path: str, durability: Durability) -> SeedBackend:
        """A fresh in-memory state; arguments ignored."""
        return SeedBackend()

    def cold_restart_code(self) -> str | None:
        """Nothing survives a restart of an in-memory manager."""
        return None
