"""Comparator (a): stdlib ``sqlite3`` doing the store's durable transactions by hand.

Same schema (the DDL below mirrors ``breakpilot_store``'s revision 2), same PRAGMAs,
same encoding (strict compact JSON, fixed-width ISO-8601 UTC text), same statements as
the store's create: ``BEGIN IMMEDIATE``; ``PRAGMA data_version``; read the session's
counter (its ``sessions`` row and the highest seq held) in one ``SELECT``; insert the
row one above both; ``COMMIT``; and, once two such creates in a row saw no other
connection commit, the one guarded ``INSERT`` in autocommit mode (it inserts only while
``data_version`` is unchanged, which proves the remembered counter current). Reads run
in a plain ``BEGIN``/``COMMIT`` and decode the row into a seed-shaped ``Checkpoint``
(JSON parsed, timestamp parsed), which is the work the store must do too. No retention:
this is the floor for a durable create on this schema.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from benchmarks.contenders.base import Durability, Retention
from benchmarks.payload import name_for, payload_for
from benchmarks.seed_reference import Checkpoint

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY,
        base_seq INTEGER NOT NULL,
        base_count INTEGER NOT NULL DEFAULT 0,
        created_at VARCHAR(32) NOT NULL,
        base_at VARCHAR(32) NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        data TEXT NOT NULL,
        metadata TEXT NOT NULL,
        origin_id TEXT,
        PRIMARY KEY (session_id, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS ix_checkpoints_session_name_seq"
    " ON checkpoints (session_id, name, seq)",
    "CREATE INDEX IF NOT EXISTS ix_checkpoints_session_created"
    " ON checkpoints (session_id, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_checkpoints_session_origin"
    " ON checkpoints (session_id, origin_id) WHERE origin_id IS NOT NULL",
)

# The session's counter: its row (the base) and the highest seq held; the next seq is
# one above both. A new session has no row yet: ADD_SESSION makes it.
READ_COUNTER = (
    "SELECT base_seq, (SELECT max(seq) FROM checkpoints WHERE session_id = ?1)"
    " FROM sessions WHERE session_id = ?1"
)
ADD_SESSION = (
    "INSERT INTO sessions(session_id, base_seq, base_count, created_at, base_at)"
    " VALUES (?, 0, 0, ?, ?) ON CONFLICT(session_id) DO NOTHING"
)
# Bulk writes (fills, imports) set the row to the exact counter afterwards.
SET_COUNTER = (
    "INSERT INTO sessions(session_id, base_seq, base_count, created_at, base_at)"
    " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(session_id) DO UPDATE SET"
    " base_seq = excluded.base_seq, base_count = sessions.base_count + excluded.base_count,"
    " base_at = excluded.base_at"
)


APPEND_CHECKPOINT = (
    "INSERT INTO checkpoints(session_id, seq, name, created_at, data, metadata)"
    " SELECT ?, ?, ?, ?, ?, ? FROM pragma_data_version WHERE data_version = ?"
)


def next_seq(cur: sqlite3.Cursor, session_id: str, now: str) -> int:
    """The session's next seq (inside the caller's write transaction)."""
    row = cur.execute(READ_COUNTER, (session_id,)).fetchone()
    if row is None:
        cur.execute(ADD_SESSION, (session_id, now, now))
        return 1
    return max(row[0], row[1] or 0) + 1


INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints(session_id, seq, name, created_at, data, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_IMPORTED = (
    "INSERT INTO checkpoints(session_id, seq, name, created_at, data, metadata, origin_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_LATEST = (
    "SELECT seq, name, created_at, data, metadata FROM checkpoints"
    " WHERE session_id = ? ORDER BY seq DESC LIMIT 1"
)
SELECT_ONE = (
    "SELECT seq, name, created_at, data, metadata FROM checkpoints WHERE session_id = ? AND seq = ?"
)
SELECT_ALL = (
    "SELECT seq, name, created_at, data, metadata FROM checkpoints"
    " WHERE session_id = ? ORDER BY seq"
)

# Read by the cold-restart subprocess: what a user of plain sqlite3 would write.
COLD_RESTART_CODE = """\
import json, sqlite3, sys
from datetime import datetime
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("PRAGMA busy_timeout=30000")
conn.execute("PRAGMA foreign_keys=ON")
conn.execute("BEGIN")
row = conn.execute(
    "SELECT seq, name, created_at, data, metadata FROM checkpoints"
    " WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (sys.argv[2],)).fetchone()
conn.execute("COMMIT")
cp = (row[0], row[1], datetime.fromisoformat(row[2]), json.loads(row[3]), json.loads(row[4]))
conn.close()
assert cp[3]["step"] > 0
"""


def now_text() -> str:
    """Fixed-width ISO-8601 UTC with microseconds, as the store writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def encode(value: Any) -> str:
    """Strict compact JSON, as the store writes it (NaN refused, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def connect(path: str, durability: Durability) -> sqlite3.Connection:
    """Autocommit connection (we issue BEGIN/COMMIT ourselves) with the store's PRAGMAs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")  # wait for the write lock, don't fail
    conn.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE from sessions
    return conn


def _decode(session_id: str, row: tuple[Any, ...] | None) -> Checkpoint | None:
    if row is None:
        return None
    seq, name, created_at, data, metadata = row
    return Checkpoint(
        id=f"{session_id}:{seq}",
        name=name,
        timestamp=datetime.fromisoformat(created_at),
        data=json.loads(data),
        metadata=json.loads(metadata),
    )


def bulk_fill(conn: sqlite3.Connection, sessions: list[tuple[int, str]], per_session: int) -> None:
    """Insert ``per_session`` checkpoints per session, seq 1..n, as a create would.

    Not timed: builds the databases the read workloads need. ``conn`` must be in
    autocommit mode; synchronous is left OFF (the caller restores its level).
    """
    cur = conn.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    for index, session_id in sessions:
        now = now_text()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute(SET_COUNTER, (session_id, per_session, per_session, now))
            cur.executemany(
                INSERT_CHECKPOINT,
                (
                    (
                        session_id,
                        step,
                        name_for(index, step),
                        now_text(),
                        encode(payload_for(index, step)),
                        "{}",
                    )
                    for step in range(1, per_session + 1)
                ),
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise


def schema_of(conn: sqlite3.Connection) -> dict[str, list[str]] | None:
    """Column names of ``sessions`` and ``checkpoints``; None if either has a trigger."""
    triggers = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'"
        " AND tbl_name IN ('sessions', 'checkpoints')"
    ).fetchone()[0]
    if triggers:
        return None
    return {
        table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        for table in ("sessions", "checkpoints")
    }


def expected_schema() -> dict[str, list[str]]:
    """The columns of (a)'s own DDL, to compare another database's schema with."""
    conn = sqlite3.connect(":memory:")
    try:
        for statement in DDL:
            conn.execute(statement)
        result = schema_of(conn)
    finally:
        conn.close()
    assert result is not None
    return result


class RawWriter:
    """Creates checkpoints in one session with the hand-written transaction."""

    def __init__(self, conn: sqlite3.Connection, session_id: str) -> None:
        self._cur = conn.cursor()
        self._session_id = session_id
        self._version: Any = None  # data_version at the last full transaction
        self._quiet = False  # no other connection committed between the last two
        self._last_seq: int | None = None

    def create(self, name: str, data: dict[str, Any]) -> str:
        """The guarded INSERT when the counter is known, else the full transaction."""
        now = now_text()
        text = encode(data)
        meta = encode({})
        cur = self._cur
        sid = self._session_id
        if self._quiet and self._last_seq is not None:
            seq = self._last_seq + 1
            cur.execute(APPEND_CHECKPOINT, (sid, seq, name, now, text, meta, self._version))
            if cur.rowcount == 1:
                self._last_seq = seq
                return f"{sid}:{seq}"
            self._quiet = False  # another connection committed
        cur.execute("BEGIN IMMEDIATE")
        try:
            version = cur.execute("PRAGMA data_version").fetchone()[0]
            seq = next_seq(cur, sid, now)
            cur.execute(INSERT_CHECKPOINT, (sid, seq, name, now, text, meta))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._quiet, self._version, self._last_seq = version == self._version, version, seq
        return f"{sid}:{seq}"


class RawBackend:
    """One database opened with stdlib sqlite3."""

    def __init__(self, path: str, durability: Durability) -> None:
        self._durability = durability
        self._conn = connect(path, durability)
        for statement in DDL:
            self._conn.execute(statement)
        self._cur = self._conn.cursor()

    def writer(self, session_id: str, retention: Retention = "default") -> RawWriter:
        """A writer (retention does not apply: (a) keeps every checkpoint)."""
        return RawWriter(self._conn, session_id)

    def _read_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        cur = self._cur
        cur.execute("BEGIN")
        try:
            cur.execute(sql, params)
            row: tuple[Any, ...] | None = cur.fetchone()
        finally:
            cur.execute("COMMIT")
        return row

    def get_latest(self, session_id: str) -> Checkpoint | None:
        """Highest seq of the session, in a read transaction."""
        return _decode(session_id, self._read_one(SELECT_LATEST, (session_id,)))

    def get(self, session_id: str, seq: int) -> Checkpoint | None:
        """Primary-key lookup, in a read transaction."""
        return _decode(session_id, self._read_one(SELECT_ONE, (session_id, seq)))

    def export(self, session_id: str) -> str:
        """The seed's export format from one read transaction."""
        cur = self._cur
        cur.execute("BEGIN")
        try:
            items = [
                {
                    "id": f"{session_id}:{seq}",
                    "name": name,
                    "timestamp": created_at,
                    "data": json.loads(data),
                    "metadata": json.loads(metadata),
                }
                for seq, name, created_at, data, metadata in cur.execute(SELECT_ALL, (session_id,))
            ]
        finally:
            cur.execute("COMMIT")
        return json.dumps(items, indent=2)

    def import_(self, session_id: str, text: str) -> int:
        """All-or-nothing import with fresh seqs; the original id kept as origin_id."""
        return self._write_rows(session_id, self._rows_from(text))

    def write_floor(self, session_id: str, text: str) -> float:
        """Seconds for the import's SQLite part alone: rows prepared beforehand, untimed.

        The bound no import on this schema, disk and durability can beat, whatever its
        parser: it is reported beside the bulk figures to show what limits them.
        """
        rows = self._rows_from(text)
        t0 = time.perf_counter()
        self._write_rows(session_id, rows)
        return time.perf_counter() - t0

    @staticmethod
    def _rows_from(text: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for item in json.loads(text):
            ts = datetime.fromisoformat(item["timestamp"]).astimezone(timezone.utc)
            rows.append(
                (
                    item["name"],
                    ts.isoformat(timespec="microseconds"),
                    encode(item["data"]),
                    encode(item.get("metadata", {})),
                    item["id"],
                )
            )
        return rows

    def _write_rows(self, session_id: str, rows: list[tuple[Any, ...]]) -> int:
        n = len(rows)
        now = now_text()
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            base = next_seq(cur, session_id, now) - 1
            cur.execute(SET_COUNTER, (session_id, base + n, n, now))
            cur.executemany(
                INSERT_IMPORTED,
                (
                    (session_id, base + i, name, ts, data, meta, origin)
                    for i, (name, ts, data, meta, origin) in enumerate(rows, start=1)
                ),
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return n

    def fill(self, sessions: list[tuple[int, str]], per_session: int) -> None:
        """One transaction per session, executemany, synchronous=OFF while filling."""
        bulk_fill(self._conn, sessions, per_session)
        level = "FULL" if self._durability == "full" else "NORMAL"
        self._conn.execute(f"PRAGMA synchronous={level}")

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        self._conn.close()


class RawSqliteContender:
    """Comparator (a)."""

    key = "a"
    label = "(a) raw sqlite3"
    durable = True

    def open(self, path: str, durability: Durability) -> RawBackend:
        """Open with the store's PRAGMAs at ``durability``."""
        return RawBackend(path, durability)

    def cold_restart_code(self) -> str | None:
        """Plain sqlite3: connect, PRAGMAs, one SELECT, decode."""
        return COLD_RESTART_CODE
