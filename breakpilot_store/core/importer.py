"""The writing side of an import: duplicate and conflict checks, numbering, inserts.

:class:`ImportWriter` takes an import's validated entries a batch at a time, in document
order, on a connection inside the caller's transaction (it never begins or commits).

Numbering. Entries of the session itself keep their seq. Entries from other sessions
("foreign") get fresh seqs above every seq the session holds or the document gives its
own entries, in document order, and keep their original id as ``origin_id``. A
document is read as it is written, so its highest own seq is known only at its end:
foreign entries are numbered above the highest own seq seen so far, and in the rare
document where a later own entry holds a seq up there, the foreign rows written so far
step aside to negative seqs and every foreign row is renumbered at the end (one UPDATE
over them). Either way the result is the same numbering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ..errors import ImportConflictError
from . import repository as repo
from .repository import ImportRow
from .transfer import ImportEntry


class ImportWriter:
    """Writes one import's batches into ``session_id`` (see the module's docstring).

    Attributes:
        written: Rows inserted so far (entries already stored are not counted).
    """

    def __init__(self, conn: Connection, session_id: str, top: int) -> None:
        """Start writing above ``top``, the session's counter (its last seq handed out)."""
        self._conn = conn
        self._session_id = session_id
        self._top = top  # the highest own seq held or handed out
        self._base = top  # foreign entries are numbered base + 1, base + 2, ...
        self._foreign = 0  # foreign entries numbered so far
        self._parked = False  # foreign rows sit at -1, -2, ... until finish()
        self.written = 0

    def write(self, batch: Sequence[ImportEntry]) -> None:
        """Check and insert one batch of entries (the next ones in document order).

        Raises:
            ImportConflictError: An entry differs from what is stored under its id.
        """
        conn, session_id = self._conn, self._session_id
        own_seqs = [e.seq for e in batch if e.session_id == session_id]
        if own_seqs and max(own_seqs) > self._base and not self._parked:
            if self._foreign:
                # Foreign rows sit where this own entry goes: park them (see above).
                repo.park_rows(conn, session_id, self._base, self._base + self._foreign)
                self._parked = True
            else:
                self._base = max(own_seqs)
        # Insert as if no entry were stored yet: the primary key and the unique origin
        # index refuse the batch whole if one is, and then it is looked up. Usually none
        # is (an import into another session, or a first import), and the batch costs
        # one statement instead of three (see pipeline: on SQLite each is a wait for the
        # GIL; on PostgreSQL the lookup of 1,000 origin ids cost more than the insert).
        top, foreign = self._top, self._foreign
        rows = self._number(batch, {}, {})
        if repo.insert_new_rows(conn, session_id, rows):
            self.written += len(rows)
            return
        self._top, self._foreign = top, foreign
        own = repo.fetch_rows_by_seq(conn, session_id, own_seqs)
        foreign_rows = repo.fetch_rows_by_origin(conn, session_id, _origins(batch, session_id))
        rows = self._number(batch, own, foreign_rows)
        repo.insert_rows(conn, session_id, rows)
        self.written += len(rows)

    def _number(
        self,
        batch: Sequence[ImportEntry],
        own: dict[int, Sequence[Any]],
        foreign: dict[str, Sequence[Any]],
    ) -> list[ImportRow]:
        """Number the batch's new entries; skip those stored identically (own/foreign).

        Raises:
            ImportConflictError: An entry differs from the row stored under its id.
        """
        session_id = self._session_id
        rows: list[ImportRow] = []
        for entry in batch:
            mine = entry.session_id == session_id
            # A foreign entry is known by its first id: the id it was first imported
            # from if the document carries origin_id (a copy of a copy), else its own.
            # An own entry is known by its seq, and also by the origin_id it carries
            # (a backup of an imported row, restored after that origin was imported
            # again under a later seq: the same checkpoint, held once).
            if mine:
                seen = own.get(entry.seq)
                if seen is None and entry.origin_id is not None:
                    seen = foreign.get(entry.origin_id)
            else:
                seen = foreign.get(entry.origin)
            if seen is not None:
                if not entry.same_as(seen):
                    held = f"{session_id}:{seen[1]}"
                    as_held = "" if held == entry.id or seen[1] < 1 else f" as {held!r}"
                    raise ImportConflictError(
                        f"checkpoint {entry.id!r} differs from the one already "
                        f"stored in session {session_id!r}{as_held}; nothing was imported"
                    )
                continue
            if mine:
                seq = entry.seq
                self._top = max(self._top, seq)
            else:
                self._foreign += 1
                seq = -self._foreign if self._parked else self._base + self._foreign
            rows.append(
                (
                    seq,
                    entry.name,
                    entry.timestamp,
                    entry.data_text,
                    entry.metadata_text,
                    entry.origin_id if mine else entry.origin,
                )
            )
            # A later duplicate in this batch is compared with this entry.
            stored: tuple[Any, ...] = (
                session_id,
                seq,
                entry.name,
                entry.timestamp,
                entry.data_text,
                entry.metadata_text,
            )
            if mine:
                own[entry.seq] = stored
                if entry.origin_id is not None:
                    foreign[entry.origin_id] = stored
            else:
                foreign[entry.origin] = stored
        return rows

    def finish(self) -> int:
        """Give parked rows their final seqs; return the session's new counter."""
        if self._parked:
            repo.renumber_pending(self._conn, self._session_id, self._top)
            return self._top + self._foreign
        return max(self._top, self._base + self._foreign)


def _origins(batch: Sequence[ImportEntry], session_id: str) -> list[str]:
    """The origins a batch's entries are known by.

    Every foreign entry's, and the ``origin_id`` an own entry carries.
    """
    return [
        e.origin if e.session_id != session_id else e.origin_id
        for e in batch
        if e.session_id != session_id or e.origin_id is not None
    ]
