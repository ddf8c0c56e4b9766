"""The ``Checkpoint`` record, field for field the seed's, with the same dict form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .codec import decode

#: The largest seq SQLite can store (a signed 64-bit INTEGER).
MAX_SEQ = 2**63 - 1

#: The fields a checkpoint from ``Checkpoint._from_json`` decodes on first use.
_LAZY = {"data": "_data_json", "metadata": "_metadata_json"}


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

    @classmethod
    def _from_json(
        cls,
        id: str,
        name: str,
        timestamp: datetime,
        data_json: str | bytes,
        metadata_json: str | bytes,
    ) -> Checkpoint:
        """A checkpoint whose ``data`` and ``metadata`` are decoded from JSON on first use.

        What ``create`` returns: it stored exactly this text, and most callers never
        read the copy back (decoding a 1 KB payload took ~8 µs of a ~120 µs create in
        the benchmark's loop). Until a field is read, ``vars()`` shows its pending text
        under a private name instead of the field; equality, ``repr``, ``to_dict``,
        ``dataclasses.asdict`` and pickling all read (and so decode) it.
        """
        checkpoint = cls.__new__(cls)
        checkpoint.__dict__.update(
            id=id,
            name=name,
            timestamp=timestamp,
            _data_json=data_json,
            _metadata_json=metadata_json,
        )
        return checkpoint

    def __getattr__(self, name: str) -> Any:
        # Only reached when the attribute is missing: the lazy fields of _from_json.
        # Two threads may both decode; setdefault keeps one result for both.
        if name in _LAZY:
            fields = self.__dict__
            pending = fields.get(_LAZY[name])
            if pending is not None:
                value = fields.setdefault(name, decode(pending, f"the {name} of {self.id!r}"))
                fields.pop(_LAZY[name], None)
                return value
            if name in fields:  # decoded by another thread meanwhile
                return fields[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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
