"""What each part of the schema costs a durable create: (a)'s transaction, minus one part.

``python -m benchmarks.schema_costs [--n N]`` times comparator (a)'s create at
``synchronous=NORMAL`` on the full schema and on variants: without the
``(session_id, created_at)`` index, without the ``(session_id, name, seq)`` index,
without both, and with revision 1's counter, which wrote the ``sessions`` row in every
create (an upsert ``RETURNING last_seq``; revision 2 only reads it). Variants take
turns in blocks of 100 creates; p50 per create and its ratio to the full schema are
printed. This is the evidence in RESULTS.md for what each part of a create costs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone

import orjson

from benchmarks.contenders.raw_sqlite import DDL, INSERT_CHECKPOINT, next_seq
from benchmarks.payload import name_for, payload_for

SESSION = "bench-schema"
BLOCK = 100
VARIANTS: dict[str, tuple[str, ...]] = {
    "full schema (a)": (),
    "without (session_id, created_at) index": ("ix_checkpoints_session_created",),
    "without (session_id, name, seq) index": ("ix_checkpoints_session_name_seq",),
    "without both indexes": (
        "ix_checkpoints_session_created",
        "ix_checkpoints_session_name_seq",
    ),
    "with the row written per create (revision 1)": (),
}
ROW_WRITE = "with the row written per create (revision 1)"
# Revision 1's allocation, on revision 2's columns: the row counts every create.
UPSERT_SEQ = (
    "INSERT INTO sessions(session_id, base_seq, base_count, created_at, base_at)"
    " VALUES (?, 1, 1, ?, ?) ON CONFLICT(session_id) DO UPDATE SET base_seq = base_seq + 1,"
    " base_count = base_count + 1, base_at = excluded.base_at RETURNING base_seq"
)


def _open(path: str, drop: tuple[str, ...]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    for statement in DDL:
        conn.execute(statement)
    for index in drop:
        conn.execute(f"DROP INDEX {index}")
    return conn


def _create(conn: sqlite3.Connection, row_write: bool, step: int, now: str) -> float:
    data = orjson.dumps(payload_for(1, step)).decode()
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    if row_write:
        seq = conn.execute(UPSERT_SEQ, (SESSION, now, now)).fetchone()[0]
    else:
        seq = next_seq(conn.cursor(), SESSION, now)
    conn.execute(INSERT_CHECKPOINT, (SESSION, seq, name_for(1, step), now, data, "{}"))
    conn.execute("COMMIT")
    return time.perf_counter() - t0


def main() -> None:
    """Time every variant, interleaved, and print p50 and the ratio to the full schema."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.schema_costs")
    parser.add_argument("--n", type=int, default=5_000, help="creates per variant")
    args = parser.parse_args()
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    with tempfile.TemporaryDirectory() as workdir:
        conns = {
            label: _open(os.path.join(workdir, f"v{i}.sqlite"), drop)
            for i, (label, drop) in enumerate(VARIANTS.items())
        }
        samples: dict[str, list[float]] = {label: [] for label in conns}
        for start in range(0, args.n, BLOCK):
            for label, conn in conns.items():
                row_write = label == ROW_WRITE
                for step in range(start + 1, min(start + BLOCK, args.n) + 1):
                    samples[label].append(_create(conn, row_write, step, now))
        for conn in conns.values():
            conn.close()
    base = statistics.median(samples["full schema (a)"])
    print(f"{'variant':42} {'p50 µs':>8} {'× full':>7}")
    for label, values in samples.items():
        p50 = statistics.median(values)
        print(f"{label:42} {p50 * 1e6:8.1f} {p50 / base:7.2f}")


if __name__ == "__main__":
    main()
