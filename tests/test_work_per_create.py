"""``create`` does the same work for a session of 10 or of 100,000 checkpoints.

Measured as SQLite virtual-machine steps (``set_progress_handler``), which count work
done inside SQLite, deterministic and independent of machine load: a COUNT(*), a full
scan or an OFFSET walk over the session would grow with its length. No timing here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event

from breakpilot_store import CheckpointManager, CheckpointStore

BIG = 100_000
NO_LIMIT = 10**9


class StepCounter:
    def __init__(self, store: CheckpointStore) -> None:
        self.steps = 0
        self.active = False
        # Install the handler on every connection the store checks out.
        event.listen(store.engine, "checkout", self._install)
        store.engine.dispose()

    def _install(self, dbapi_conn, record, proxy) -> None:  # noqa: ANN001
        dbapi_conn.set_progress_handler(self._tick, 1)

    def _tick(self) -> int:
        if self.active:
            self.steps += 1
        return 0

    def measure(self, fn, repeat: int) -> float:  # noqa: ANN001
        self.steps = 0
        self.active = True
        try:
            for _ in range(repeat):
                fn()
        finally:
            self.active = False
        return self.steps / repeat


def fill(path: Path, session: str, n: int) -> None:
    """Give ``session`` n checkpoints quickly, straight through sqlite3."""
    with sqlite3.connect(path) as raw:
        ts = "2026-01-01T00:00:00.000000+00:00"
        raw.execute(
            "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (session, n, n, ts, ts),
        )
        raw.executemany(
            "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
            "VALUES (?, ?, ?, ?, ?, '{}')",
            ((session, i, f"n{i % 10}", ts, json.dumps({"i": i})) for i in range(1, n + 1)),
        )


@pytest.fixture
def store(db_path: Path):
    with CheckpointStore(db_path, durability="normal") as s:
        fill(db_path, "small", 10)
        fill(db_path, "big", BIG)
        yield s


def test_create_without_compression_does_not_grow_with_the_session(store) -> None:
    counter = StepCounter(store)
    small = CheckpointManager("small", NO_LIMIT, NO_LIMIT, store=store)
    big = CheckpointManager("big", NO_LIMIT, NO_LIMIT, store=store)
    payload = {"step": 1, "messages": ["hi"] * 5}
    small_steps = counter.measure(lambda: small.create("n1", payload), 20)
    big_steps = counter.measure(lambda: big.create("n1", payload), 20)
    assert small_steps > 0
    print("no-compression steps", small_steps, big_steps)
    assert big_steps <= small_steps * 1.1, (small_steps, big_steps)
    # Sanity of the instrument: a COUNT(*) over the big session is visible to it.
    scan = counter.measure(
        lambda: store.execute_read("SELECT count(*) FROM checkpoints WHERE session_id = 'big'"), 1
    )
    assert scan > BIG


def test_create_with_compression_does_not_grow_with_history(store) -> None:
    counter = StepCounter(store)
    small = CheckpointManager("small", 100, 50, store=store)
    big = CheckpointManager("big", 100, 50, store=store)
    big.create("catch-up", {})  # the 100,000-row session compresses once, here
    assert len(big) < 60
    for _ in range(45):  # bring both to the steady state of a long-running agent
        small.create("n1", {})
        big.create("n1", {})
    # Average over enough creates to include compression runs in both.
    small_steps = counter.measure(lambda: small.create("n2", {"x": 1}), 60)
    big_steps = counter.measure(lambda: big.create("n2", {"x": 1}), 60)
    print("compression steps", small_steps, big_steps)
    assert big_steps <= small_steps * 1.25, (small_steps, big_steps)
    assert len(big) <= 51 and len(small) <= 51
