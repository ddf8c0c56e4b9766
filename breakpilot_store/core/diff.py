"""The difference between two JSON values, path by path (``diff`` and the web view).

Pure functions over decoded values: no database, no I/O. Dicts are compared key by key,
lists index by index (a list that grew shows its new items as added), anything else by
value and type (``1`` and ``1.0`` and ``True`` differ: they are stored differently).
Paths are written as the codec names them in its errors: ``data['messages'][3]['at']``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["added", "removed", "changed"]

#: Marks "no value" on one side of a change (``None`` is JSON ``null``, a real value).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


@dataclass(frozen=True)
class Change:
    """One difference between two values.

    Attributes:
        path: Where, e.g. ``data['messages'][3]``.
        kind: ``"added"`` (only in the second), ``"removed"`` (only in the first) or
            ``"changed"`` (in both, different).
        old: The first value (:data:`MISSING` when added).
        new: The second value (:data:`MISSING` when removed).
    """

    path: str
    kind: Kind
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; a missing side is left out."""
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.old is not MISSING:
            out["old"] = self.old
        if self.new is not MISSING:
            out["new"] = self.new
        return out


def _same(a: Any, b: Any) -> bool:
    # bool is an int and 1 == 1.0 in Python; JSON keeps them apart, and so does this.
    return type(a) is type(b) and a == b


def iter_changes(old: Any, new: Any, path: str) -> Iterator[Change]:
    """Yield the differences between ``old`` and ``new`` in document order.

    Args:
        old: The first JSON value.
        new: The second JSON value.
        path: The name of the values' place (``"data"``); nested paths extend it.
    """
    if type(old) is dict and type(new) is dict:
        for key, value in old.items():
            where = f"{path}[{key!r}]"
            if key in new:
                yield from iter_changes(value, new[key], where)
            else:
                yield Change(where, "removed", value, MISSING)
        for key, value in new.items():
            if key not in old:
                yield Change(f"{path}[{key!r}]", "added", MISSING, value)
        return
    if type(old) is list and type(new) is list:
        for i in range(max(len(old), len(new))):
            where = f"{path}[{i}]"
            if i >= len(new):
                yield Change(where, "removed", old[i], MISSING)
            elif i >= len(old):
                yield Change(where, "added", MISSING, new[i])
            else:
                yield from iter_changes(old[i], new[i], where)
        return
    if not _same(old, new):
        yield Change(path, "changed", old, new)


def diff_checkpoints(a: Any, b: Any) -> list[Change]:
    """Return what changed from checkpoint ``a`` to ``b``: ``name``, ``data``, ``metadata``.

    ``a`` and ``b`` are :class:`~breakpilot_store.checkpoint.Checkpoint` records (any
    object with ``name``, ``data`` and ``metadata``).
    """
    changes = list(iter_changes(a.name, b.name, "name"))
    changes += iter_changes(a.data, b.data, "data")
    changes += iter_changes(a.metadata, b.metadata, "metadata")
    return changes


def count_kinds(changes: list[Change]) -> dict[str, int]:
    """Return ``{"added": n, "removed": n, "changed": n}``."""
    counts = {"added": 0, "removed": 0, "changed": 0}
    for change in changes:
        counts[change.kind] += 1
    return counts
