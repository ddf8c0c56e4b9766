"""The session counter with creates that do not write the session's row (revision 0002).

Several stores on one database are several connections (several agents, an operator's
CLI): whatever one of them does to a session (create, clear, import, compress, delete),
the next create through any other continues the numbering gaplessly, never reuses a seq,
and the counter an operator derives from the raw tables agrees with the rows. On SQLite
a connection that knows a session's counter creates with one guarded statement; these
tests make sure that knowledge is dropped whenever someone else commits.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timedelta

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore, StoreBusyError


def seq(checkpoint) -> int:  # noqa: ANN001
    return int(checkpoint.id.rpartition(":")[2])


@pytest.fixture
def stores(backend_url):
    """Two stores on the same database: two agents' connections."""
    with CheckpointStore(backend_url) as a, CheckpointStore(backend_url) as b:
        yield a, b


def warm(store: CheckpointStore, session: str, n: int = 3) -> int:
    """Create n checkpoints (enough for SQLite's connection to know the counter)."""
    last = 0
    for i in range(n):
        last = seq(store.create(session, "warm", {"i": i}))
    return last


class TestCounterAcrossConnections:
    def test_alternating_writers_stay_gapless(self, stores, raw) -> None:
        a, b = stores
        got = []
        for i in range(40):
            writer = a if (i // 3) % 2 == 0 else b  # runs of three, then switch
            got.append(seq(writer.create("s", "n", {"i": i})))
        assert got == list(range(1, 41))
        assert raw().counters() == {"s": (40, 40)}

    def test_a_clear_elsewhere_is_seen(self, stores, raw) -> None:
        a, b = stores
        last = warm(a, "s")
        assert b.clear("s") == last
        assert seq(a.create("s", "after", {})) == last + 1
        assert raw().counters() == {"s": (last + 1, 1)}
        assert [c.seq for c in a.list_checkpoints("s")] == [last + 1]

    def test_an_import_elsewhere_is_seen(self, stores, raw) -> None:
        a, b = stores
        last = warm(a, "s")
        doc = [{"id": "other:1", "name": "x", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}]
        assert b.import_checkpoints("s", doc, min_last_seq=100) == 1
        assert seq(a.create("s", "after", {})) == 101
        assert raw().counters() == {"s": (101, last + 2)}

    def test_a_compression_elsewhere_is_seen(self, stores, raw) -> None:
        a, b = stores
        warm(a, "s", 30)
        removed = b.compress("s", compress_after=10)
        assert removed
        c = a.create("s", "after", {}, compress_after=1000)
        assert seq(c) == 31
        held = 30 - len(removed) + 1
        assert raw().counters() == {"s": (31, held)}
        assert a.count("s") == held == len(a.list_checkpoints("s"))

    def test_a_delete_elsewhere_starts_the_session_again(self, stores, raw) -> None:
        a, b = stores
        warm(a, "s")
        b.delete_session("s")
        assert seq(a.create("s", "again", {})) == 1
        assert raw().counters() == {"s": (1, 1)}

    def test_an_operators_hand_insert_is_never_overwritten(self, stores, raw) -> None:
        a, _ = stores
        last = warm(a, "s")
        db = raw()
        stamp = "2026-01-01T00:00:00.000000+00:00"
        if db.kind == "postgres":
            db.execute(
                "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
                " VALUES (?, ?, 'hand', CAST(? AS TIMESTAMPTZ), CAST('{}' AS JSON),"
                " CAST('{}' AS JSON))",
                ("s", last + 1, stamp),
            )
        else:
            db.execute(
                "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
                " VALUES (?, ?, 'hand', ?, '{}', '{}')",
                ("s", last + 1, stamp),
            )
        assert seq(a.create("s", "after", {})) == last + 2
        names = [c.name for c in a.list_checkpoints("s")][-2:]
        assert names == ["hand", "after"]

    def test_retention_counts_creates_made_elsewhere(self, stores, raw) -> None:
        a, b = stores
        for i in range(12):
            writer = a if i % 2 else b
            writer.create("s", f"n{i % 3}", {"i": i}, max_checkpoints=5)
        assert [c.seq for c in a.list_checkpoints("s")] == [1, 9, 10, 11, 12]
        assert raw().counters() == {"s": (12, 5)}

    def test_threads_of_one_store_stay_gapless(self, backend_url, raw) -> None:
        with CheckpointStore(backend_url) as store:
            got: list[int] = []
            lock = threading.Lock()

            def write(k: int) -> None:
                for i in range(25):
                    n = seq(store.create("s", f"t{k}", {"i": i}))
                    with lock:
                        got.append(n)

            threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert sorted(got) == list(range(1, 101))
        assert raw().counters() == {"s": (100, 100)}

    def test_managers_with_different_limits_share_one_counter(self, store, raw) -> None:
        small = CheckpointManager("s", store=store, compress_after=1000, max_checkpoints=4)
        large = CheckpointManager("s", store=store, compress_after=1000, max_checkpoints=1000)
        for i in range(10):
            (small if i % 3 == 0 else large).create("n", {"i": i})
        held = raw().counters()["s"]
        assert held == (10, len(large)) == (10, len(large.get_all()))

    def test_idle_sessions_are_judged_by_their_newest_create(self, store, raw) -> None:
        store.create("old", "n", {})
        store.create("busy", "n", {})
        db = raw()
        db.age("2000-01-01T00:00:00.000000+00:00")
        # Creates after the aging write no row of "busy": their time is the session's.
        store.create("busy", "n", {})
        idle = store.list_sessions(idle_for=timedelta(days=1))
        assert [i.session_id for i in idle] == ["old"]
        info = store.session_info("busy")
        assert info is not None and info.updated_at == info.last_checkpoint_at


@pytest.fixture
def store(backend_url):
    with CheckpointStore(backend_url) as s:
        yield s


# -- SQLite's one-statement create -------------------------------------------------------


def statements(store: CheckpointStore, action) -> list[str]:  # noqa: ANN001
    """The SQL the calling thread's hot-path connection runs during ``action()``."""
    seen: list[str] = []
    conn = store._pins.get().connection  # the connection this thread's creates use
    conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    # SQLite reports statements run inside another (here by the pragma_data_version
    # table) with a leading "--": only the connection's own statements count.
    return [s.split()[0].upper() for s in seen if not s.startswith("--")]


def test_a_known_counter_costs_one_statement(db_path) -> None:
    with CheckpointStore(db_path) as store:
        first = statements(store, lambda: store.create("s", "n", {}))
        assert first[0] == "BEGIN" and first[-1] == "COMMIT"
        warm(store, "s", 2)
        assert statements(store, lambda: store.create("s", "n", {})) == ["INSERT"]
        # Another connection commits: the guard inserts nothing, the full path runs.
        with CheckpointStore(db_path) as other:
            other.create("elsewhere", "n", {})
        after = statements(store, lambda: store.create("s", "n", {}))
        assert after[:2] == ["INSERT", "BEGIN"] and after[-1] == "COMMIT", after
        # Still somebody else's commit since the last full path: no guarded try.
        with CheckpointStore(db_path) as other:
            other.create("elsewhere", "n", {})
        assert statements(store, lambda: store.create("s", "n", {}))[0] == "BEGIN"
        assert [c.seq for c in store.list_checkpoints("s")] == [1, 2, 3, 4, 5, 6]


def test_retention_due_takes_the_full_transaction(db_path) -> None:
    with CheckpointStore(db_path) as store:
        for _ in range(3):
            store.create("s", "n", {}, max_checkpoints=4)
        assert statements(store, lambda: store.create("s", "n", {}, max_checkpoints=4)) == [
            "INSERT"
        ]
        due = statements(store, lambda: store.create("s", "n", {}, max_checkpoints=4))
        assert "DELETE" in due and due[0] == "BEGIN"
        assert [c.seq for c in store.list_checkpoints("s")] == [1, 3, 4, 5]


def test_a_failed_one_statement_create_forgets_the_counter(db_path) -> None:
    with CheckpointStore(db_path, busy_timeout=0.05) as store:
        warm(store, "s")
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # an operator holding the write lock
        try:
            with pytest.raises(StoreBusyError):
                store.create("s", "blocked", {})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        created = statements(store, lambda: store.create("s", "after", {}))
        assert created[0] == "BEGIN"  # the counter is read again, not trusted
        assert [c.seq for c in store.list_checkpoints("s")] == [1, 2, 3, 4]


# -- the checkpoint create returns decodes its data when first read -----------------------


def test_the_returned_checkpoint_is_an_independent_snapshot(store) -> None:
    data = {"messages": [{"role": "user"}]}
    cp = store.create("s", "n", data, {"m": [1]})
    data["messages"].append("later")
    assert cp.data == {"messages": [{"role": "user"}]} and cp.metadata == {"m": [1]}
    assert cp.data is cp.data  # decoded once
    assert cp == store.get(cp.id)
    again = store.create("s", "n", {"x": 1})
    assert json.loads(json.dumps(again.to_dict()))["data"] == {"x": 1}
    again.data = {"replaced": True}
    assert again.data == {"replaced": True}


def test_threads_reading_a_fresh_checkpoint_see_one_value(store) -> None:
    def read(cp, barrier, seen) -> None:  # noqa: ANN001
        barrier.wait()
        seen.append(cp.data)

    for _ in range(20):
        cp = store.create("s", "n", {"k": list(range(50))})
        seen: list[object] = []
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=read, args=(cp, barrier, seen)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(value is seen[0] for value in seen) and seen[0] == {"k": list(range(50))}


@pytest.mark.parametrize("front", ["sync", "async"])
def test_rows_whose_session_row_was_deleted_by_hand_are_numbered_above(db_path, front) -> None:  # noqa: ANN001
    """An operator deletes a session's row in the ``sqlite3`` shell (foreign keys off there).

    Found by a hostile campaign (round 6): the checkpoints stayed, the next create
    assumed an empty session, and every create of that session failed with a UNIQUE
    ``DatabaseError``, for good (PostgreSQL numbered on above them).
    """
    import asyncio

    from breakpilot_store import AsyncCheckpointStore

    with CheckpointStore(db_path) as store:
        for i in range(5):
            store.create("a", "step", {"i": i})
    raw = sqlite3.connect(db_path)
    with raw:
        raw.execute("DELETE FROM sessions WHERE session_id = 'a'")
    assert raw.execute("SELECT count(*) FROM checkpoints").fetchone() == (5,)
    if front == "sync":
        with CheckpointStore(db_path) as store:
            made = [store.create("a", "again", {}).id for _ in range(2)]
    else:

        async def two() -> list[str]:
            async with AsyncCheckpointStore(db_path) as store:
                return [(await store.create("a", "again", {})).id for _ in range(2)]

        made = asyncio.run(two())
    assert made == ["a:6", "a:7"]
    assert raw.execute("SELECT seq FROM checkpoints ORDER BY seq").fetchall() == [
        (n,) for n in range(1, 8)
    ]
    with CheckpointStore(db_path) as store:
        assert store.session_info("a").last_seq == 7
    raw.close()
