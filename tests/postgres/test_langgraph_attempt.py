"""PostgreSQL: ``store.run(attempt=)`` rolled back whole on an error, and the LangGraph
saver's one-round-trip puts from several threads at once (no saver lock there: the
session's row lock orders them), directly and in PgBouncer mode (``SET LOCAL``).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from sqlalchemy import text

from breakpilot_store import CheckpointStore
from breakpilot_store.errors import BreakpilotStoreError

_MAKE = text("CREATE TABLE IF NOT EXISTS extra (v INTEGER PRIMARY KEY)")
_ADD = text("INSERT INTO extra (v) VALUES (:v) ON CONFLICT DO NOTHING RETURNING v")


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_failed_attempt_is_typed_and_rolled_back_whole(
    pg_base_url: str, pg_schema: str, pgbouncer: bool
) -> None:
    bad = text("INSERT INTO no_such_table VALUES (1)")
    with CheckpointStore(pg_base_url, schema=pg_schema, pgbouncer=pgbouncer) as store:
        store.run(lambda conn: conn.execute(_MAKE), write=True)
        with pytest.raises(BreakpilotStoreError):
            store.run(
                lambda conn: None,
                write=True,
                attempt=([(_ADD, {"v": 7}), (bad, {})], lambda rows: True),
            )
        # The connection is usable again, and the first statement was undone.
        found = store.run(lambda conn: conn.execute(text("SELECT v FROM extra")).fetchall())
        store.run(lambda conn: None, write=True, attempt=([(_ADD, {"v": 8})], bool))
        again = store.run(lambda conn: conn.execute(text("SELECT v FROM extra")).fetchall())
    assert [tuple(r) for r in found] == []
    assert [tuple(r) for r in again] == [(8,)]


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_concurrent_saver_puts_stay_gapless(
    pg_base_url: str, pg_schema: str, pgbouncer: bool, pg_raw: Any
) -> None:
    """Threads putting to one thread at once: the row lock orders them (no saver lock)."""
    from langgraph.checkpoint.base import empty_checkpoint

    from breakpilot_store.langgraph import BreakpilotSaver

    errors: list[BaseException] = []
    store = CheckpointStore(pg_base_url, schema=pg_schema, pgbouncer=pgbouncer)
    with store, BreakpilotSaver(store) as saver:
        config = {"configurable": {"thread_id": "busy", "checkpoint_ns": ""}}
        saver.put(config, empty_checkpoint(), {}, {})

        def work() -> None:
            try:
                for _ in range(20):
                    stored = saver.put(config, empty_checkpoint(), {}, {})
                    saver.put_writes(stored, [("ch", 1), ("other", 2)], "task")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    seqs = [r[0] for r in pg_raw("SELECT seq FROM checkpoints WHERE session_id = 'busy'")]
    assert sorted(seqs) == list(range(1, 82))
    # The session's row and the rows agree (core.counters' invariant).
    assert pg_raw(
        "SELECT base_count + coalesce((SELECT max(seq) FROM checkpoints "
        "WHERE session_id = 'busy' AND seq > base_seq), base_seq) - base_seq "
        "FROM sessions WHERE session_id = 'busy'"
    ) == [(81,)]
    writes = "SELECT count(*) FROM langgraph_writes WHERE session_id = 'busy'"
    assert pg_raw(writes) == [(160,)]


def test_a_single_statement_attempt_is_typed_too(pg_url: str, pg_raw: Any) -> None:
    """One statement goes alone (autocommit); its unique violation is still typed."""
    clash = text("INSERT INTO extra (v) VALUES (:v)")
    with CheckpointStore(pg_url) as store:
        store.run(lambda conn: conn.execute(_MAKE), write=True)
        store.run(lambda conn: None, write=True, attempt=([(clash, {"v": 1})], bool))
        with pytest.raises(BreakpilotStoreError):
            store.run(lambda conn: None, write=True, attempt=([(clash, {"v": 1})], bool))
        store.run(lambda conn: None, write=True, attempt=([(clash, {"v": 2})], bool))
    assert pg_raw("SELECT v FROM extra ORDER BY v") == [(1,), (2,)]


def test_a_threads_hot_connection_is_taken_again_by_the_next_thread(pg_url: str) -> None:
    """LangGraph writes from a new thread pool per invoke: server connections are reused."""
    pids: list[int] = []

    def work(store: CheckpointStore, n: int) -> None:
        store.create("s", "step", {"n": n})  # the hot path: this thread's connection
        pids.append(store._pg._pins.get().connection.info.backend_pid)

    with CheckpointStore(pg_url) as store:
        for n in range(3):
            thread = threading.Thread(target=work, args=(store, n))
            thread.start()
            thread.join()
            del thread
            gc.collect()  # the ended thread's holder goes, and its connection back
        assert [c.id for c in store.list_checkpoints("s")] == ["s:1", "s:2", "s:3"]
    assert len(pids) == 3 and len(set(pids)) == 1, pids


def test_concurrent_first_puts_of_new_threads_stay_gapless(
    pg_base_url: str, pg_schema: str, pg_raw: Any
) -> None:
    """Eight stores put the first checkpoints of the same new threads at once.

    Found by a hostile campaign (round 6): a put whose lock found no session row (the
    thread's first put, not yet committed) read the state in its next statement, after
    that commit, without the lock; two such puts took the same seq (a raw
    ``DatabaseError``, duplicate key) or deadlocked.
    """
    from langgraph.checkpoint.base import empty_checkpoint

    from breakpilot_store.langgraph import BreakpilotSaver

    stores = [CheckpointStore(pg_base_url, schema=pg_schema) for _ in range(8)]
    savers = [BreakpilotSaver(store) for store in stores]
    errors: list[BaseException] = []
    rounds = 30
    try:
        for n in range(rounds):
            config = {"configurable": {"thread_id": f"t{n}", "checkpoint_ns": ""}}
            start = threading.Barrier(len(savers))

            def work(saver: Any, config: dict[str, Any] = config, start: Any = start) -> None:
                start.wait()
                try:
                    for _ in range(3):
                        saver.put(config, empty_checkpoint(), {}, {})
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            _run_all([threading.Thread(target=work, args=(s,)) for s in savers])
    finally:
        for store in stores:
            store.close()
    assert errors == []
    rows = pg_raw("SELECT session_id, count(*), max(seq) FROM checkpoints GROUP BY session_id")
    assert sorted(rows) == sorted((f"t{n}", 24, 24) for n in range(rounds))


def test_puts_racing_delete_thread_are_never_an_untyped_error(
    pg_base_url: str, pg_schema: str
) -> None:
    """Round 6: a put_writes whose thread another store deleted between its statement's
    snapshot and its insert raised the foreign key's raw ``DatabaseError``; the one
    round trip now gives way to the full put_writes (which locks first), as on SQLite.
    """
    import uuid

    from langgraph.checkpoint.base import empty_checkpoint

    from breakpilot_store.langgraph import BreakpilotSaver

    errors: list[BaseException] = []
    stop = threading.Event()
    stores = [CheckpointStore(pg_base_url, schema=pg_schema) for _ in range(4)]
    writes = [0]

    def writer(store: CheckpointStore, ns: str) -> None:
        saver = BreakpilotSaver(store)
        config = {"configurable": {"thread_id": "T", "checkpoint_ns": ns}}
        while not stop.is_set():
            try:
                stored = saver.put(config, empty_checkpoint(), {"source": "loop", "step": 1}, {})
                saver.put_writes(stored, [("a", 1), ("b", 2)], str(uuid.uuid4()))
                writes[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    def deleter(store: CheckpointStore) -> None:
        saver = BreakpilotSaver(store)
        try:
            for _ in range(40):
                saver.delete_thread("T")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    threads = [
        threading.Thread(target=writer, args=(stores[0], "")),
        threading.Thread(target=writer, args=(stores[1], "")),
        threading.Thread(target=writer, args=(stores[2], "sub:1")),
        threading.Thread(target=deleter, args=(stores[3],)),
    ]
    try:
        _run_all(threads)
    finally:
        for store in stores:
            store.close()
    assert errors == []
    assert writes[0] > 0


def _run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_known_threads_puts_take_the_one_round_trip(pg_url: str, monkeypatch: Any) -> None:
    """The guard on the lock (``xmax``) must not turn the common case into the full put."""
    from langgraph.checkpoint.base import empty_checkpoint

    from breakpilot_store.langgraph import BreakpilotSaver
    from breakpilot_store.langgraph import operations as ops

    full: list[str] = []
    real = ops._put_full

    def counting(conn: Any, where: Any, *args: Any) -> Any:
        full.append(where.thread_id)
        return real(conn, where, *args)

    monkeypatch.setattr(ops, "_put_full", counting)
    config = {"configurable": {"thread_id": "known", "checkpoint_ns": ""}}
    with CheckpointStore(pg_url) as store, BreakpilotSaver(store) as saver:
        for _ in range(20):
            config = saver.put(config, empty_checkpoint(), {}, {})
    assert full == ["known"]  # the thread's first put only
