"""What each part of the schema costs a durable create: (a)'s transaction, minus one part.

``python -m benchmarks.schema_costs [--n N]`` times comparator (a)'s create at
``synchronous=NORMAL`` on the full schema and on variants that each drop one thing the
design keeps: the ``(session_id, created_at)`` index, the ``(session_id, name, seq)``
index, both, or the ``sessions`` counter row (seq from ``max(seq) + 1`` instead, which
would reuse seqs after ``rollback_to``). Variants take turns in blocks of 100 creates;
p50 per create and its ratio to the full schema are printed. This is the evidence for
the reading in RESULTS.md of why the store's create cannot beat LangGraph's saver
(a single-table insert) without giving up one of these.
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

from benchmarks.contenders.raw_sqlite import ALLOCATE_SEQ, DDL, INSERT_CHECKPOINT
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
    "without the sessions counter row": (),
}
NO_COUNTER = "without the sessions counter row"
MAX_SEQ = "SELECT coalesce(max(seq), 0) + 1 FROM checkpoints WHERE session_id = ?"


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


def _create(conn: sqlite3.Connection, counter: bool, step: int, now: str) -> float:
    data = orjson.dumps(payload_for(1, step)).decode()
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    if counter:
        seq = conn.execute(ALLOCATE_SEQ, (SESSION, now, now)).fetchone()[0]
    else:
        seq = conn.execute(MAX_SEQ, (SESSION,)).fetchone()[0]
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
        conns[NO_COUNTER].execute(
            "INSERT INTO sessions VALUES (?, 0, 0, ?, ?)", (SESSION, now, now)
        )
        samples: dict[str, list[float]] = {label: [] for label in conns}
        for start in range(0, args.n, BLOCK):
            for label, conn in conns.items():
                counter = label != NO_COUNTER
                for step in range(start + 1, min(start + BLOCK, args.n) + 1):
                    samples[label].append(_create(conn, counter, step, now))
        for conn in conns.values():
            conn.close()
    base = statistics.median(samples["full schema (a)"])
    print(f"{'variant':42} {'p50 µs':>8} {'× full':>7}")
    for label, values in samples.items():
        p50 = statistics.median(values)
        print(f"{label:42} {p50 * 1e6:8.1f} {p50 / base:7.2f}")


if __name__ == "__main__":
    main()
