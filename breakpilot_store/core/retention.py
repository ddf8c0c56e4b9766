"""The retention rule: which checkpoints a session keeps when it grows.

A pure statement builder: policy in, one ``DELETE`` out. The store runs it in the same
transaction as the ``create`` that triggered it.

The rule, applied after a create leaves a session holding more than ``compress_after``
checkpoints (compression) or more than ``max_checkpoints`` (the cap):

1. **Compression** keeps the set of

   * the first checkpoint the session holds (lowest seq),
   * the :data:`KEEP_RECENT` most recent (highest seqs), and
   * among the rest, the highest-seq checkpoint of each name.

   It is a set, so the first checkpoint is never kept twice (the seed duplicated it when
   ``compress_after < 21``), and "latest" is the highest seq, the true order of
   creation, not the wall clock.
2. **The cap**: if what compression keeps (or, without compression, everything held) is
   more than ``max_checkpoints``, the oldest go until exactly ``max_checkpoints`` stay:
   oldest seq first, the first checkpoint last of those, and the newest never. In keep
   order: the newest, then the first, then the rest newest first.

Both steps are one ``DELETE``: the rows to keep are ranked by a window function over the
session's rows, and everything outside the top ``max_checkpoints`` of the kept set goes.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

#: How many of the most recent checkpoints compression always keeps (the seed's 20).
KEEP_RECENT = 20

#: The cap used when a caller sets none (larger than any session can hold).
NO_CAP = 2**62

# DELETE comes first, the CTEs inside its subquery: Python's sqlite3 reports a rowcount
# only for statements that start with INSERT/UPDATE/DELETE/REPLACE, and the store
# keeps its held count with that rowcount.
_RETENTION = text(
    f"""
    DELETE FROM checkpoints
    WHERE session_id = :sid
      AND seq NOT IN (
        WITH held AS (
            SELECT seq, name FROM checkpoints WHERE session_id = :sid
        ), edges AS (
            SELECT min(seq) AS first_seq, max(seq) AS last_seq,
                   (SELECT seq FROM held ORDER BY seq DESC LIMIT 1 OFFSET {KEEP_RECENT - 1})
                       AS recent_edge
            FROM held
        ), kept AS (
            SELECT h.seq FROM held h CROSS JOIN edges e
            WHERE :compress = 0
               OR e.recent_edge IS NULL
               OR h.seq = e.first_seq
               OR h.seq >= e.recent_edge
               OR h.seq IN (
                   SELECT max(m.seq) FROM held m CROSS JOIN edges me
                   WHERE m.seq > me.first_seq AND m.seq < me.recent_edge
                   GROUP BY m.name)
        ), ranked AS (
            SELECT k.seq, row_number() OVER (
                       ORDER BY CASE WHEN k.seq = e.last_seq THEN 0
                                     WHEN k.seq = e.first_seq THEN 1 ELSE 2 END,
                                k.seq DESC) AS keep_rank
            FROM kept k CROSS JOIN edges e
        )
        SELECT seq FROM ranked WHERE keep_rank <= :max_keep
      )
    """
)


def retention_delete() -> TextClause:
    """Return the retention ``DELETE``; bind it with :func:`retention_params`."""
    return _RETENTION


def retention_params(
    session_id: str, held: int, compress_after: int | None, max_checkpoints: int | None
) -> dict[str, object] | None:
    """Return the ``DELETE``'s parameters for a session holding ``held`` checkpoints.

    Returns:
        ``None`` when neither compression nor the cap is due (the common case, which
        then costs no statement at all).
    """
    compress = compress_after is not None and held > compress_after
    capped = max_checkpoints is not None and held > max_checkpoints
    if not (compress or capped):
        return None
    return {
        "sid": session_id,
        "compress": int(compress),
        "max_keep": NO_CAP if max_checkpoints is None else max_checkpoints,
    }
