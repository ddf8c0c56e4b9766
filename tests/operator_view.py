"""The session counter as the README tells an operator to derive it from the raw tables.

Deliberately independent of the store's code and views: the seqs above a session's
``base_seq`` are the creates made since its ``sessions`` row was last written, so the
last seq handed out is the larger of ``base_seq`` and the top seq held, and the count
held is ``base_count`` plus the creates above the base.
"""

from __future__ import annotations

from typing import Any

COUNTERS_SQL = (
    "SELECT s.session_id, s.base_seq, s.base_count, "
    "(SELECT max(c.seq) FROM checkpoints c WHERE c.session_id = s.session_id) "
    "FROM sessions s"
)


def derive(rows: list[tuple[Any, ...]]) -> dict[str, tuple[int, int]]:
    """``{session_id: (last_seq, held)}`` from the rows of :data:`COUNTERS_SQL`."""
    out = {}
    for session_id, base_seq, base_count, top in rows:
        last = max(base_seq, top or 0)
        out[session_id] = (last, base_count + last - base_seq)
    return out
