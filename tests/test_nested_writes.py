"""A write made from inside another write of the same thread, on a SQLite file.

Found in the hostile campaign's leftovers: SQLite has one writer per file, so a write
made while this thread holds another of the store's write transactions open on a
different connection waited for it. From the iterable of ``import_checkpoints`` (or a
``run(op, write=True)`` operation) that was ``busy_timeout`` and then a misleading
"locked by another connection"; a ``serial`` write inside a ``serial`` write's group
waited for ever. Both are refused at once now, with nothing written (a create inside a
hot ``run`` still joins its transaction on the thread's own connection).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from breakpilot_store import CheckpointStore
from breakpilot_store.errors import StoreBusyError

BUSY_SECONDS = 5.0  # what the old behaviour waited; the refusal must come well before


def _rows(db_path, session_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(db_path) as conn:  # what an operator sees
        return conn.execute(
            "SELECT seq, name FROM checkpoints WHERE session_id = ? ORDER BY seq", (session_id,)
        ).fetchall()


def _refused_at_once(call) -> None:
    """``call()`` raises the nested-write StoreBusyError, long before busy_timeout."""
    began = time.monotonic()
    with pytest.raises(StoreBusyError, match="inside another write of this thread"):
        call()
    assert time.monotonic() - began < BUSY_SECONDS / 2


def _entries(store: CheckpointStore, session_id: str) -> list[dict]:
    return [cp.to_dict() for cp in store.list_checkpoints(session_id)]


def test_a_write_from_the_import_iterable_is_refused_at_once(db_path):
    with CheckpointStore(db_path, busy_timeout=BUSY_SECONDS) as store:
        for i in range(3):
            store.create("src", f"s{i}", {"i": i})
        entries = _entries(store, "src")

        def iterable():
            for entry in entries:
                store.create("other", "inside", {})
                yield entry

        _refused_at_once(lambda: store.import_checkpoints("dst", iterable()))
        # Usable afterwards, and the import's all-or-nothing held.
        store.create("after", "ok", {})
    assert _rows(db_path, "dst") == []
    assert _rows(db_path, "other") == []
    assert _rows(db_path, "after") == [(1, "ok")]


def test_a_write_from_a_run_operation_is_refused_and_the_run_rolls_back(db_path):
    with CheckpointStore(db_path, busy_timeout=BUSY_SECONDS) as store:
        store.create("s", "first", {})

        def op(conn):
            conn.execute(text("UPDATE sessions SET base_at = base_at WHERE session_id = 's'"), {})
            store.clear("s")

        _refused_at_once(lambda: store.run(op, write=True))
        assert store.create("s", "second", {}).seq == 2
    assert _rows(db_path, "s") == [(1, "first"), (2, "second")]


def test_a_serial_write_inside_a_serial_write_fails_instead_of_hanging(db_path):
    store = CheckpointStore(db_path, busy_timeout=BUSY_SECONDS)
    store.create("s", "first", {})
    outcome: list[object] = []

    def inner(conn):
        return store.run(lambda c: None, write=True, serial=True)

    def call() -> None:
        try:
            outcome.append(store.run(inner, write=True, hot=True, serial=True))
        except Exception as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(BUSY_SECONDS * 2)
    assert not worker.is_alive(), "the nested serial write hung"
    assert len(outcome) == 1 and isinstance(outcome[0], StoreBusyError), outcome
    # The turn was given back: serial writes go on, from this thread and others.
    store.run(lambda c: c.execute(text("SELECT 1"), {}), write=True, hot=True, serial=True)
    assert store.create("s", "second", {}).seq == 2
    store.close()


def test_a_core_write_inside_a_hot_run_is_refused_and_the_run_rolls_back(db_path):
    """A clear (a Core transaction) inside a hot run: another connection, so refused.

    (A create there joins the run's transaction on the thread's own connection:
    tests/reliability/test_interrupts.py.)
    """
    with CheckpointStore(db_path, busy_timeout=BUSY_SECONDS) as store:
        store.create("s", "first", {})

        def op(conn):
            conn.execute(text("DELETE FROM checkpoints WHERE session_id = 's'"), {})
            store.clear("other")

        _refused_at_once(lambda: store.run(op, write=True, hot=True))
        assert store.create("s", "second", {}).seq == 2
    # The run's DELETE was rolled back with it.
    assert _rows(db_path, "s") == [(1, "first"), (2, "second")]


def test_writes_on_other_threads_still_wait_their_turn(db_path):
    """Only the same thread is refused: another thread's write waits for the lock."""
    with CheckpointStore(db_path, busy_timeout=BUSY_SECONDS) as store:
        store.create("s", "first", {})
        started, release = threading.Event(), threading.Event()
        results: list[object] = []

        def holder(conn):
            started.set()
            release.wait(5)

        def other() -> None:
            started.wait(5)
            results.append(store.create("t", "from another thread", {}).seq)

        hold = threading.Thread(target=lambda: store.run(holder, write=True))
        hold.start()
        waiter = threading.Thread(target=other)
        waiter.start()
        time.sleep(0.3)
        release.set()
        hold.join(10)
        waiter.join(10)
        assert results == [1]
    assert _rows(db_path, "t") == [(1, "from another thread")]
