"""The ``Checkpoint`` record, field for field the seed's, with the same dict form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: The largest seq SQLite can store (a signed 64-bit INTEGER).
MAX_SEQ = 2**63 - 1


def split_id(checkpoint_id: str) -> tuple[str, int] | None:
    """Split ``"session:seq"`` into its parts, or return ``None`` if it is not one.

    Session ids may themselves contain ``:``, so the split is on the last one.
    """
    session_id, sep, seq = checkpoint_id.rpartition(":")
    if not sep or not session_id or not seq.isascii() or not seq.isdigit() or len(seq) > 19:
        return None
    number = int(seq)
    # "007" is not the id of seq 7; beyond SQLite's 64-bit INTEGER no seq can exist.
    if number < 1 or number > MAX_SEQ or str(number) != seq:
        return None
    return session_id, number


@dataclass
class Checkpoint:
    """A recovery checkpoint: a named snapshot of an agent's state.

    Attributes:
        id: ``"{session_id}:{seq}"``; seq counts 1, 2, 3... per session, never reused.
        name: The semantic name, e.g. ``"task_started"``.
        timestamp: When it was created, an aware UTC datetime (microsecond precision).
        data: The state, a JSON object.
        metadata: Extra information, a JSON object (``{}`` if none was given).
    """

    id: str
    name: str
    timestamp: datetime
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        """The session this checkpoint belongs to (the id up to its last ``:``)."""
        return self.id.rpartition(":")[0]

    @property
    def seq(self) -> int:
        """The checkpoint's sequence number within its session."""
        return int(self.id.rpartition(":")[2])

    def to_dict(self) -> dict[str, Any]:
        """Return the seed's dict form (the element of an export)."""
        return {
            "id": self.id,
            "name": self.name,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Build a checkpoint from :meth:`to_dict`'s form, exactly as the seed does."""
        return cls(
            id=data["id"],
            name=data["name"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            data=data["data"],
            metadata=data.get("metadata", {}),
        )
