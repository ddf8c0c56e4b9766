"""``store.run(op, write=True, hot=True)``: the seam's hot-path transactions.

A hot operation on a SQLite file runs on the bare driver connection the store's own
hot path pins to the calling thread. These tests check what a caller relies on: it
commits, it rolls back whole on an error (typed, database unchanged), it works the same
on every backend and through the async store, and the store's own creates on that same
connection stay gapless after it wrote checkpoints behind the counter cache's back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import bindparam, text

from breakpilot_store import AsyncCheckpointStore, CheckpointStore
from breakpilot_store.errors import BreakpilotStoreError
from breakpilot_store.schema import UTCDateTime

_ADD = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "VALUES (:sid, :seq, 'by-hand', :created_at, '{}', '{}')"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def _insert_next(conn, sid: str) -> int:
    """A hot write: the next seq of ``sid`` by hand (one statement per call, no lists)."""
    top = conn.execute(
        text("SELECT coalesce(max(seq), 0) FROM checkpoints WHERE session_id = :sid"),
        {"sid": sid},
    ).fetchone()[0]
    conn.execute(_ADD, {"sid": sid, "seq": top + 1, "created_at": datetime.now(timezone.utc)})
    return top + 1


def test_hot_write_commits_and_creates_stay_gapless_after_it(backend_url, raw):
    with CheckpointStore(backend_url) as store:
        store.create("s", "a", {"i": 1})
        store.create("s", "a", {"i": 2})  # the thread's counter cache now knows "s"
        assert store.run(lambda conn: _insert_next(conn, "s"), write=True, hot=True) == 3
        # Without the cache forgetting, this create would reuse seq 3 on the
        # one-statement path (the hot write was this connection's own commit).
        assert store.create("s", "a", {"i": 4}).id == "s:4"
        assert store.create("s", "a", {"i": 5}).id == "s:5"
    assert [r[0] for r in raw().query("SELECT seq FROM checkpoints ORDER BY seq")] == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_hot_write_error_rolls_back_whole_and_is_typed(backend_url, raw):
    def half_then_fail(conn):
        _insert_next(conn, "s")
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"), {})

    with CheckpointStore(backend_url) as store:
        store.create("s", "a", {"i": 1})
        with pytest.raises(BreakpilotStoreError):
            store.run(half_then_fail, write=True, hot=True)
        assert store.create("s", "a", {"i": 2}).id == "s:2"
    assert raw().query("SELECT seq, name FROM checkpoints ORDER BY seq") == [(1, "a"), (2, "a")]


def test_hot_write_through_the_async_store_in_groups(backend_url, raw):
    async def main():
        async with AsyncCheckpointStore(backend_url) as store:
            await store.create("s", "a", {"i": 0})
            seqs = await asyncio.gather(
                *(
                    store.run(lambda conn: _insert_next(conn, "s"), write=True, hot=True)
                    for _ in range(10)
                )
            )
            created = await store.create("s", "a", {"i": 99})
            return sorted(seqs), created.id

    seqs, created = asyncio.run(main())
    assert seqs == list(range(2, 12))
    assert created == "s:12"
    assert raw().scalar("SELECT count(*) FROM checkpoints") == 12


def test_hot_read_is_a_single_statement_on_a_sqlite_file(db_path):
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 1})
        seen = store.run(
            lambda conn: conn.execute(
                text("SELECT count(*) FROM checkpoints WHERE session_id = :sid"), {"sid": "s"}
            ).fetchone()[0],
            hot=True,
        )
        kind = store.run(lambda conn: type(conn).__name__, hot=True)
    assert seen == 1
    assert kind == "DriverConnection"  # the bare driver, not SQLAlchemy's Connection
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)


# -- serial=True: writes from many threads queue on one lock and share one connection ----

_MARK = text("CREATE TEMP TABLE IF NOT EXISTS marks (n INTEGER)")
_ADD_MARK = text("INSERT INTO marks VALUES (1)")
_MARKS = text("SELECT count(*) FROM marks")


def _mark(conn) -> int:
    """A hot write that counts its calls in a TEMP table: one per connection."""
    conn.execute(_MARK, {})
    conn.execute(_ADD_MARK, {})
    return conn.execute(_MARKS, {}).fetchone()[0]


def _on_live_threads(call, count: int) -> list:
    """``call()`` on ``count`` threads in turn, all alive until the last one is done.

    (A thread that ended gives its pinned connection back to the pool, where the next
    thread would find it.)
    """
    found: list = []
    turns = [threading.Event() for _ in range(count + 1)]

    def worker(n: int) -> None:
        turns[n].wait(timeout=60)
        try:
            found.append(call())
        except BaseException as exc:  # noqa: BLE001 - returned for the assertion
            found.append(exc)
        finally:
            turns[n + 1].set()
        turns[count].wait(timeout=60)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    turns[0].set()
    for thread in threads:
        thread.join()
    return found


def test_serial_hot_writes_from_many_threads_share_one_connection(db_path):
    with CheckpointStore(db_path) as store:
        serial = _on_live_threads(lambda: store.run(_mark, write=True, hot=True, serial=True), 3)
        # Without serial each thread writes on its own pinned connection (own TEMP table).
        alone = _on_live_threads(lambda: store.run(_mark, write=True, hot=True), 2)
    assert serial == [1, 2, 3]
    assert alone == [1, 1]


@pytest.mark.parametrize("hot", [True, False])
def test_serial_writes_queue_on_the_lock_rather_than_fail_busy(db_path, hot):
    """busy_timeout=0: two writers that meet SQLite's lock fail; serial ones wait their turn."""
    writers = 4
    meet = threading.Barrier(writers)
    errors: list[BaseException] = []

    def slow_insert(conn) -> int:
        seq = _insert_next(conn, "s")
        time.sleep(0.05)  # hold the transaction while the others try to begin theirs
        return seq

    def write() -> None:
        meet.wait()
        try:
            store.run(slow_insert, write=True, hot=hot, serial=True)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    with CheckpointStore(db_path, busy_timeout=0) as store:
        store.create("s", "a", {"i": 0})
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [cp.seq for cp in store.list_checkpoints("s")] == [1, 2, 3, 4, 5]


class _HeldTurn:
    """A serial write that holds the turn until released, and writes queued behind it.

    ``hold()`` starts the first write, which inserts the next seq of session ``s`` and
    waits inside its transaction; ``queue(name, op)`` starts each further write on a
    thread of its own, one at a time, so that they queue in that order; ``finish()``
    lets the first go and waits for all. Each call's result, or exception, lands in
    ``outcomes[name]``.
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.inside, self.release = threading.Event(), threading.Event()
        self.outcomes: dict[str, object] = {}
        self.threads: list[threading.Thread] = []

    def _first(self, conn) -> int:
        seq = _insert_next(conn, "s")
        self.inside.set()
        self.release.wait(60)  # the others queue meanwhile
        return seq

    def _call(self, name: str, op) -> None:
        try:
            self.outcomes[name] = self.store.run(op, write=True, hot=True, serial=True)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertions
            self.outcomes[name] = exc

    def _start(self, name: str, op) -> threading.Thread:
        thread = threading.Thread(target=self._call, args=(name, op))
        self.threads.append(thread)
        thread.start()
        return thread

    def hold(self) -> None:
        self._start("first", self._first)
        assert self.inside.wait(60)

    def queue(self, name: str, op) -> None:
        queued = len(self.store._serial._queue)
        thread = self._start(name, op)
        while thread.is_alive() and len(self.store._serial._queue) < queued + 1:
            time.sleep(0.001)

    def finish(self) -> dict[str, object]:
        self.release.set()
        for thread in self.threads:
            thread.join(60)
        return self.outcomes


def test_serial_hot_writes_queued_during_a_commit_share_the_next_one(db_path):
    """The writes waiting when a turn ends commit together; one that fails fails alone."""

    def failing(conn) -> int:
        _insert_next(conn, "s")
        raise ValueError("refused after its insert")

    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        statements: list[str] = []
        store._pins.shared().connection.set_trace_callback(statements.append)
        held = _HeldTurn(store)
        held.hold()
        held.queue("second", lambda conn: _insert_next(conn, "s"))
        held.queue("failing", failing)
        held.queue("third", lambda conn: _insert_next(conn, "s"))
        outcomes = held.finish()
        commits = [s for s in statements if s.strip().upper() == "COMMIT"]
        seqs = [cp.seq for cp in store.list_checkpoints("s")]
    assert outcomes["first"] == 2
    assert outcomes["second"] == 3
    assert isinstance(outcomes["failing"], ValueError)
    assert outcomes["third"] == 4  # the failed write's row was rolled back with it
    assert seqs == [1, 2, 3, 4]
    assert len(commits) == 2  # the first write's, then one for the three queued


# -- deferral: under overlapping writers, a write waits for the next to share its commit --


def _rows(path) -> int:
    """What an operator sees: the checkpoints committed, through a raw connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    finally:
        conn.close()


def _commits(store) -> list[str]:
    """The COMMITs the serial writes' shared connection runs from now on."""
    statements: list[str] = []
    store._pins.shared().connection.set_trace_callback(statements.append)
    return statements


def _next(conn) -> int:
    return _insert_next(conn, "s")


def test_a_lone_serial_writer_commits_each_write_at_once_and_never_defers(db_path):
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        statements = _commits(store)
        for n in range(30):
            assert store.run(_next, write=True, hot=True, serial=True) == n + 2
            assert _rows(db_path) == n + 2  # committed before the call returned
        overlap = store._serial.overlap
    assert overlap == 0.0
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 30


def test_when_writes_overlap_a_write_defers_and_the_next_one_commits_both(db_path):
    """LangGraph's pattern: a write that finds the turn free waits for the next write."""
    outcome: list = []
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        statements = _commits(store)
        serial = store._serial
        serial.overlap = 1.0  # lately, every commit saw another write arrive
        serial.group_seconds = 60.0  # so the first write waits for the second
        first = threading.Thread(
            target=lambda: outcome.append(store.run(_next, write=True, hot=True, serial=True))
        )
        first.start()
        deadline = time.monotonic() + 30
        while not serial._deferring and time.monotonic() < deadline:
            time.sleep(0.001)
        assert serial._deferring == 1
        assert _rows(db_path) == 1  # deferred: nothing of it is committed yet
        assert store.run(_next, write=True, hot=True, serial=True) == 3
        first.join(30)
        assert not first.is_alive()  # woken by the commit, long before its minute
        overlap = serial.overlap
    assert outcome == [2]  # queued first, so its seq comes first
    assert _rows(db_path) == 3
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
    assert overlap > 0.5  # that commit overlapped too: the pattern goes on


def test_a_deferred_write_that_nobody_joins_commits_alone_and_deferring_stops(db_path):
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        statements = _commits(store)
        serial = store._serial
        serial.overlap = 1.0
        serial.group_seconds = 0.02
        seen = []
        for n in range(8):
            serial.group_seconds = 0.02  # (commits fold their own time in)
            seen.append(serial.overlap)
            assert store.run(_next, write=True, hot=True, serial=True) == n + 2
            assert _rows(db_path) == n + 2
    # Each wait that timed out, and each commit alone, lowered the overlap: after a
    # few, writes no longer wait at all.
    assert seen == sorted(seen, reverse=True)
    assert seen[0] == 1.0
    assert seen[-1] < 0.5
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 8


class _Interrupted(Exception):
    pass


def _interrupt_after(seconds: float):
    """Raise _Interrupted in the main thread after ``seconds`` (as a SIGINT would)."""
    import signal

    def handler(signum, frame):
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return lambda: signal.signal(signal.SIGALRM, previous)


def _write_interrupted(store: CheckpointStore) -> None:
    """A serial write from this thread that an interrupt ends 0.2 s in."""
    restore = _interrupt_after(0.2)
    try:
        with pytest.raises(_Interrupted):
            store.run(_next, write=True, hot=True, serial=True)
    finally:
        restore()


def test_a_write_interrupted_while_it_defers_is_withdrawn_not_written(db_path):
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        serial = store._serial
        serial.overlap = 1.0
        serial.group_seconds = 60.0
        _write_interrupted(store)
        assert serial._queue == []
        assert serial._deferring == 0
        assert _rows(db_path) == 1
        # Nothing left behind: the next write takes its turn and commits.
        serial.overlap = 0.0
        assert store.run(_next, write=True, hot=True, serial=True) == 2
    assert _rows(db_path) == 2


def test_a_write_interrupted_while_it_waits_for_the_turn_is_withdrawn(db_path):
    with CheckpointStore(db_path) as store:
        store.create("s", "a", {"i": 0})
        held = _HeldTurn(store)
        held.hold()
        try:
            _write_interrupted(store)
        finally:
            outcomes = held.finish()
        assert store._serial._queue == []
        seqs = [cp.seq for cp in store.list_checkpoints("s")]
    assert outcomes["first"] == 2
    assert seqs == [1, 2]  # the holder's write; the interrupted one was never run


def test_closing_the_store_under_a_serial_group_ends_it_and_fails_the_queued(db_path):
    """The write in progress commits; every write queued behind it gets StoreClosedError."""
    from breakpilot_store.errors import StoreClosedError

    store = CheckpointStore(db_path)
    store.create("s", "a", {"i": 0})
    held = _HeldTurn(store)
    held.hold()
    held.queue("second", _next)
    held.queue("third", _next)
    store.close()
    outcomes = held.finish()
    assert outcomes["first"] == 2  # it was using the connection: it finished
    assert isinstance(outcomes["second"], StoreClosedError)
    assert isinstance(outcomes["third"], StoreClosedError)
    assert _rows(db_path) == 2
