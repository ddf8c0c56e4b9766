"""The retention rule: which checkpoints a session keeps when it grows.

Pure statement builders: policy in, ``DELETE`` out. The store runs them in the same
transaction as the ``create`` that triggered them.

The rule, applied after a create leaves a session holding more than ``compress_after``
checkpoints:

1. **Compression** keeps the set of

   * the first checkpoint the session holds (lowest seq),
   * the :data:`KEEP_RECENT` most recent (highest seqs), and
   * among the rest, the highest-seq checkpoint of each name;

   everything else goes, in one ``DELETE``. It is a set, so the first checkpoint is never
   kept twice (the seed duplicated it when ``compress_after < 21``), and "latest" is the
   highest seq, the true order of creation, not the wall clock.
2. **The cap**: if the session still holds more than ``max_checkpoints`` (checked after
   every create, whether or not compression ran), the oldest are deleted until it holds
   exactly ``max_checkpoints``: oldest seq first, the first checkpoint last of those, and
   the newest checkpoint never.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

#: How many of the most recent checkpoints compression always keeps (the seed's 20).
KEEP_RECENT = 20

_FIRST = "(SELECT min(seq) FROM checkpoints WHERE session_id = :sid)"
# The seq of the KEEP_RECENT-th newest row; NULL while the session holds fewer, which
# makes every comparison below false and so deletes nothing. A bounded OFFSET: the
# index on (session_id, seq) walks KEEP_RECENT entries, whatever the session's length.
_RECENT_EDGE = (
    "(SELECT seq FROM checkpoints WHERE session_id = :sid "
    f"ORDER BY seq DESC LIMIT 1 OFFSET {KEEP_RECENT - 1})"
)
_MIDDLE = f"session_id = :sid AND seq > {_FIRST} AND seq < {_RECENT_EDGE}"

_COMPRESS = text(
    f"DELETE FROM checkpoints WHERE {_MIDDLE} "
    f"AND seq NOT IN (SELECT max(seq) FROM checkpoints WHERE {_MIDDLE} GROUP BY name)"
)

_CAP = text(
    "DELETE FROM checkpoints WHERE session_id = :sid AND seq IN ("
    "SELECT seq FROM checkpoints WHERE session_id = :sid "
    "AND seq < (SELECT max(seq) FROM checkpoints WHERE session_id = :sid) "
    f"ORDER BY CASE WHEN seq = {_FIRST} THEN 1 ELSE 0 END, seq "
    "LIMIT :excess)"
)


def compression_delete() -> TextClause:
    """Return the compression ``DELETE``; bind ``sid`` (the session id)."""
    return _COMPRESS


def cap_delete() -> TextClause:
    """Return the cap ``DELETE``; bind ``sid`` and ``excess`` (how many rows to remove)."""
    return _CAP


def needs_compression(held: int, compress_after: int) -> bool:
    """Answer whether a session holding ``held`` checkpoints is due for compression."""
    return held > compress_after


def cap_excess(held: int, max_checkpoints: int) -> int:
    """Return how many checkpoints the cap removes from a session holding ``held``."""
    return max(0, held - max_checkpoints)
