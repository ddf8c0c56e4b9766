"""The saver's one-statement put and put_writes (SQLite) and their fallbacks.

A put is one guarded ``INSERT ... SELECT`` when the thread is known; put_writes' inserts
are guarded by the thread's mapping. These tests hit every case the guard turns away
(a new thread, another kind of session, a rewrite, a retried write) and check the rows,
the counter and the store's own creates in the same session through a raw connection.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import event

from breakpilot_store import CheckpointStore
from breakpilot_store.langgraph import BreakpilotSaver, ThreadConflictError


def _checkpoint(step: int) -> dict[str, Any]:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=step))
    cp["channel_values"] = {"step": step}
    return cp


def test_puts_and_the_stores_creates_share_one_gapless_counter(backend_url: str, raw: Any) -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        config = saver.put(config, _checkpoint(0), {}, {})  # a new thread: the full path
        config = saver.put(config, _checkpoint(1), {}, {})  # one statement
        assert store.create("t", "by-store", {"x": 1}).id == "t:3"
        assert store.create("t", "by-store", {"x": 2}).id == "t:4"  # the one-statement create
        config = saver.put(config, _checkpoint(5), {}, {})
        assert store.create("t", "by-store", {"x": 3}).id == "t:6"
        again = _checkpoint(5)
        again["id"] = config["configurable"]["checkpoint_id"]
        again["channel_values"] = {"step": "rewritten"}
        saver.put(config, again, {}, {})  # the same id again: rewritten in place
        config = saver.put(config, _checkpoint(7), {}, {})
        got = saver.get_tuple(config)
        assert got is not None and got.checkpoint["channel_values"] == {"step": 7}
    db = raw()
    assert [r[0] for r in db.query("SELECT seq FROM checkpoints ORDER BY seq")] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]
    stored = db.scalar("SELECT data FROM checkpoints WHERE seq = 5")
    assert "rewritten" in (stored if isinstance(stored, str) else json.dumps(stored))
    assert db.counters()["t"] == (7, 7)


def test_put_writes_turned_away_by_the_guard(backend_url: str, raw: Any) -> None:
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        store.create("plain", "n", {})
        bad = {"configurable": {"thread_id": "plain", "checkpoint_ns": "", "checkpoint_id": "c"}}
        with pytest.raises(ThreadConflictError, match="not a LangGraph thread"):
            saver.put_writes(bad, [("ch", 1)], "task")
        # A thread's first call may be put_writes: the full path makes the thread.
        first = {"configurable": {"thread_id": "w", "checkpoint_ns": "", "checkpoint_id": "c"}}
        saver.put_writes(first, [("a", 1), ("b", 2)], "task")
        # A retried task repeats its writes: the first stays (LangGraph's rule).
        saver.put_writes(first, [("a", 10), ("b", 20), ("c", 30)], "task")
    db = raw()
    assert db.scalar("SELECT count(*) FROM langgraph_writes WHERE session_id = 'plain'") == 0
    assert db.query(
        "SELECT idx, channel, value FROM langgraph_writes WHERE session_id = 'w' ORDER BY idx"
    ) in (
        [(0, "a", "1"), (1, "b", "2"), (2, "c", "30")],
        [(0, "a", 1), (1, "b", 2), (2, "c", 30)],  # PostgreSQL's JSON column, decoded
    )


def test_writes_from_many_threads_share_one_connection(db_path: Any) -> None:
    # LangGraph's sync loop writes from its pool threads in turn. Each write on its own
    # thread's connection found its page cache emptied by the others' commits (WAL) and
    # read its pages again: the saver's writes go to the store's shared connection
    # (store.run(serial=True)), so no thread checks a connection out of the pool.
    with CheckpointStore(db_path) as store, BreakpilotSaver(store) as saver:
        config: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        config = saver.put(config, _checkpoint(0), {}, {})
        checkouts: list[int] = []
        event.listen(store.engine, "checkout", lambda *args: checkouts.append(1))
        done = threading.Event()
        configs = [config]

        def write(step: int) -> None:
            config = configs[-1]
            configs.append(saver.put(config, _checkpoint(step), {}, {}))
            saver.put_writes(configs[-1], [("ch", step)], f"task-{step}")

        threads = []
        for step in range(1, 5):  # one after another, each on a thread that stays alive
            thread = threading.Thread(target=lambda s=step: (write(s), done.wait(60)))
            thread.start()
            threads.append(thread)
            while len(configs) <= step and thread.is_alive():
                time.sleep(0.001)
        done.set()
        for thread in threads:
            thread.join()
        assert len(configs) == 5
        assert checkouts == []
        newest = saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
        assert newest is not None and newest.checkpoint["channel_values"] == {"step": 4}
        assert newest.pending_writes == [("task-4", "ch", 4)]
