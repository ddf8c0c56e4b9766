"""Checkpoints as lines of text, one per checkpoint: ``list`` (streamed), ``watch``.

A line is rendered from the stored row as it is (the data's JSON text, not decoded and
encoded again), with widths fixed before the first line is printed, so the first line
goes out at once and nothing is held back to measure the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timezone
from typing import Any

from ..codec import decode, render_json
from ..core.transfer import seed_timestamp
from .format import clip

#: C0 and C1 control characters: a name (or a preview) must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Widest a name column gets before names are cut.
NAME_CAP = 24
SIZE_WIDTH = 8
TIME_WIDTH = 19


def printable(text: str) -> str:
    r"""Return ``text`` with control characters shown as ``\x1b`` escapes."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _text(value: Any) -> str:
    # A slice of UTF-8 may end inside a character: that piece is dropped, not replaced.
    return value.decode("utf-8", "ignore") if isinstance(value, (bytes, bytearray)) else value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else len(value.encode())


def _when(value: Any) -> str:
    if isinstance(value, str):  # SQLite's stored text: fixed-width UTC
        return value[:10] + " " + value[11:19]
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class LineFormat:
    """Fixed-width columns for ``(session_id, seq, name, created_at, data, metadata)`` rows.

    Args:
        seq_width: Characters for the seq column (the session's last seq decides).
        name_width: Characters for the name column.
        width: The console's width; the data preview takes what is left.
    """

    def __init__(self, seq_width: int, name_width: int, width: int) -> None:
        self.seq_width = max(seq_width, 3)
        self.name_width = max(min(name_width, NAME_CAP), 4)
        fixed = self.seq_width + self.name_width + TIME_WIDTH + SIZE_WIDTH + 4 * 2
        self.data_width = max(width - fixed, 8)

    @classmethod
    def for_rows(cls, last_seq: int, rows: Sequence[Sequence[Any]], width: int) -> LineFormat:
        """Choose the widths from the session's last seq and the first rows to print."""
        names = [len(printable(r[2])) for r in rows] or [4]
        return cls(len(str(last_seq)), max(names), width)

    def header(self, rule: str = "\u2500") -> list[str]:
        """The heading line and the rule under it, of ``rule`` (``-``: no box drawing)."""
        heads = (
            f"{'seq':>{self.seq_width}}  {'name':<{self.name_width}}  "
            f"{'created (UTC)':<{TIME_WIDTH}}  {'size':>{SIZE_WIDTH}}  data"
        )
        return [heads, rule * min(len(heads) + self.data_width - 4, 200)]

    def line(self, row: Sequence[Any]) -> str:
        """One checkpoint as one line."""
        data = row[4]
        size = _size(data) + _size(row[5])
        # Only the start of the data is shown: decode no more of it than that.
        head = (
            _text(data[: self.data_width * 4]) if len(data) > self.data_width * 4 else _text(data)
        )
        name = clip(printable(row[2]), self.name_width)
        return (
            f"{row[1]:>{self.seq_width}}  {name:<{self.name_width}}  {_when(row[3])}  "
            f"{size:>{SIZE_WIDTH}}  {clip(printable(head), self.data_width)}"
        )


def entry_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A row as the export format's entry (``Checkpoint.to_dict()``)."""
    return {
        "id": f"{row[0]}:{row[1]}",
        "name": row[2],
        "timestamp": seed_timestamp(row[3]),  # from SQLite's stored text, or a datetime
        "data": decode(row[4]),
        "metadata": decode(row[5]),
    }


def json_line(row: Sequence[Any]) -> str:
    """A row as one line of JSON (``watch --json``)."""
    return render_json(entry_dict(row)).decode()


def json_item(row: Sequence[Any]) -> str:
    """A row as an item of an indented JSON array (``list --json``, streamed).

    The layout ``json.dumps(entries, indent=2, ensure_ascii=False)`` gives the item (two
    more spaces on every line), written by orjson (the stdlib past its nesting limit).
    """
    return "  " + render_json(entry_dict(row), indent=True).decode().replace("\n", "\n  ")
