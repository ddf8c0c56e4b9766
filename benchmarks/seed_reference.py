"""Comparator (c): a minimal vendored copy of the seed's in-memory CheckpointManager.

The semantics are the seed's (``shared/seed/checkpoint_manager.py``), defects
included: no durability, ``data`` kept by reference, compression by timestamp,
``max_checkpoints`` not enforced, ``get`` as a linear scan. Only what the benchmarks
call is kept (create, get, get_by_name, get_latest, export, import_checkpoints); the
logging and callback hooks are dropped because they cost nothing when disabled.
This copy exists because CI clones the repository without ``shared/`` beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class Checkpoint:
    """A recovery checkpoint, as in the seed."""

    id: str
    name: str
    timestamp: datetime
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The seed's export shape."""
        return {
            "id": self.id,
            "name": self.name,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Inverse of ``to_dict``."""
        return cls(
            id=data["id"],
            name=data["name"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            data=data["data"],
            metadata=data.get("metadata", {}),
        )


class SeedCheckpointManager:
    """The seed's CheckpointManager (in memory, no durability)."""

    def __init__(
        self, session_id: str, max_checkpoints: int = 100, compress_after: int = 50
    ) -> None:
        self.session_id = session_id
        self.max_checkpoints = max_checkpoints
        self.compress_after = compress_after
        self._checkpoints: list[Checkpoint] = []
        self._checkpoint_count = 0

    def create(
        self, name: str, data: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> Checkpoint:
        """Append a checkpoint; compress when over ``compress_after``."""
        self._checkpoint_count += 1
        checkpoint = Checkpoint(
            id=f"{self.session_id}:{self._checkpoint_count}",
            name=name,
            timestamp=datetime.now(timezone.utc),
            data=data,
            metadata=metadata or {},
        )
        self._checkpoints.append(checkpoint)
        if len(self._checkpoints) > self.compress_after:
            self._compress_checkpoints()
        return checkpoint

    def get(self, checkpoint_id: str) -> Checkpoint | None:
        """Linear scan by id, as in the seed."""
        for cp in self._checkpoints:
            if cp.id == checkpoint_id:
                return cp
        return None

    def get_by_name(self, name: str) -> list[Checkpoint]:
        """All checkpoints with this name, newest first."""
        return [cp for cp in reversed(self._checkpoints) if cp.name == name]

    def get_latest(self, name: str | None = None) -> Checkpoint | None:
        """The last checkpoint, optionally of one name."""
        if not self._checkpoints:
            return None
        if name:
            matching = self.get_by_name(name)
            return matching[0] if matching else None
        return self._checkpoints[-1]

    def _compress_checkpoints(self) -> None:
        """First + last 20 + latest (by timestamp) of each name in between."""
        if len(self._checkpoints) <= self.compress_after:
            return
        first = self._checkpoints[0]
        recent = self._checkpoints[-20:]
        middle = self._checkpoints[1:-20]
        by_name: dict[str, Checkpoint] = {}
        for cp in middle:
            if cp.name not in by_name or cp.timestamp > by_name[cp.name].timestamp:
                by_name[cp.name] = cp
        compressed = [first, *by_name.values(), *recent]
        compressed.sort(key=lambda cp: cp.timestamp)
        self._checkpoints = compressed

    def export(self) -> str:
        """All checkpoints as the seed's JSON (a list of dicts, indent=2)."""
        return json.dumps([cp.to_dict() for cp in self._checkpoints], indent=2)

    def import_checkpoints(self, json_data: str) -> int:
        """Append checkpoints from the seed's JSON; returns how many."""
        imported = [Checkpoint.from_dict(cp) for cp in json.loads(json_data)]
        self._checkpoints.extend(imported)
        self._checkpoint_count = max(self._checkpoint_count, len(self._checkpoints))
        return len(imported)

    def __len__(self) -> int:
        return len(self._checkpoints)
