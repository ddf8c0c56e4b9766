"""Many threads on one store: thread pools, finished threads, an in-memory store."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from breakpilot_store import CheckpointStore, StoreBusyError

from .conftest import integrity

SAFETY = 90


def test_thread_pool_of_live_threads_never_runs_the_pool_dry(db_path: Path) -> None:
    # Found by the campaign: each thread that creates keeps a connection for its life,
    # and the pool held 15: with 15 live threads every other call waited 30 s for a
    # connection and raised StoreBusyError (its message suggesting pool options that
    # SQLite stores refuse), and the 16th thread's first create did the same.
    store = CheckpointStore(db_path, busy_timeout=5, durability="normal")
    live = 64
    ready = threading.Barrier(live + 1, timeout=SAFETY)
    release = threading.Event()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            store.create(f"t{i}", "first", {"i": i})
            ready.wait()
            release.wait(SAFETY)
            store.create(f"t{i}", "second", {"i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(live)]
    for thread in threads:
        thread.start()
    ready.wait()  # 64 live threads, each holding its connection
    # Every kind of call, from this thread and from brand-new ones, answers at once.
    assert store.count("t0") == 1
    assert len(store.list_sessions()) == live
    exported = store.export_json("t1")
    assert store.import_checkpoints("copy", [store.get("t1:1").to_dict()]) == 1
    assert store.clear("t2") == 1
    assert store.compress("t3", compress_after=1) == []
    assert [cp.id for cp in store.iter_checkpoints("t4")] == ["t4:1"]
    assert store.get_latest("t5").id == "t5:1"
    assert store.create("main", "m", {}).id == "main:1"
    with ThreadPoolExecutor(40) as pool:
        ids = list(pool.map(lambda i: store.create(f"pool{i}", "p", {}).id, range(200)))
    assert ids == [f"pool{i}:1" for i in range(200)]
    release.set()
    for thread in threads:
        thread.join(SAFETY)
    assert not errors, errors[:3]
    assert '"t1:1"' in exported
    # The finished threads' connections were given back; the store goes on.
    with ThreadPoolExecutor(50) as pool:
        counts = list(pool.map(lambda i: store.count(f"t{i}"), range(live)))
    assert counts == [1 if i == 2 else 2 for i in range(live)]
    store.close()
    assert integrity(db_path) == "ok"
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 2 * live - 1 + 202
    finally:
        raw.close()


def test_in_memory_store_is_one_database_for_every_thread() -> None:
    # Found by the campaign: CheckpointStore("sqlite://") used from a second thread
    # answered "no such table: checkpoints" (each thread had an empty database).
    store = CheckpointStore("sqlite://", busy_timeout=5)
    store.create("s", "main", {"n": 0})
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.get_latest("s").id))
    thread.start()
    thread.join(SAFETY)
    assert seen == ["s:1"]

    def hammer(k: int) -> list[int]:
        return [store.create("shared", "w", {"k": k, "i": i}).seq for i in range(40)]

    with ThreadPoolExecutor(8) as pool:
        seqs = [seq for part in pool.map(hammer, range(8)) for seq in part]
    assert sorted(seqs) == list(range(1, 321))  # unique and gapless
    assert store.count("shared") == 320
    assert store.session_info("shared").last_seq == 320
    store.close()


def test_memory_spelled_as_sqlite3_does_is_in_memory_not_a_file(tmp_path, monkeypatch) -> None:
    # Found while merging: CheckpointStore(":memory:") (sqlite3's spelling, and what
    # LangGraph users pass to SqliteSaver.from_conn_string) made a file named ":memory:"
    # (and ":memory:.lock") in the current directory.
    monkeypatch.chdir(tmp_path)
    store = CheckpointStore(":memory:")
    assert str(store.url) == "sqlite://"
    store.create("s", "main", {"n": 0})
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.count("s")))
    thread.start()
    thread.join(SAFETY)
    assert seen == [1]
    store.close()
    other = CheckpointStore(":memory:")  # a new, empty database, as sqlite3 gives
    assert other.count("s") == 0
    other.close()
    assert list(tmp_path.iterdir()) == []


def test_in_memory_store_waits_for_another_threads_transaction() -> None:
    store = CheckpointStore("sqlite://", busy_timeout=0.3)
    for i in range(3):
        store.create("s", "n", {"i": i})
    stream = store.iter_checkpoints("s")
    assert next(stream).seq == 1  # this thread's read transaction holds the database
    # The same thread: a typed error at once (waiting would wait for itself).
    with pytest.raises(StoreBusyError, match="same thread"):
        store.create("s", "n", {})
    # Another thread: waits busy_timeout, then a typed error naming it.
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(errors, lambda: store.count("s")))
    thread.start()
    thread.join(SAFETY)
    assert len(errors) == 1 and isinstance(errors[0], StoreBusyError)
    assert "busy_timeout" in str(errors[0])
    assert [cp.seq for cp in stream] == [2, 3]
    # Released: every thread gets it again.
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(store.create("s", "n", {}).seq))
    thread.start()
    thread.join(SAFETY)
    assert results == [4]
    store.close()


def _catch(errors: list[BaseException], call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        errors.append(exc)


def test_running_out_of_file_descriptors_is_named_and_passes(db_path: Path) -> None:
    # Found probing live threads under a low descriptor limit (here 300 threads, 256
    # descriptors): each thread's connection holds the file, its -wal and -shm; past the
    # limit SQLite says only "unable to open database file", and the error blamed a
    # missing directory or permissions. Now it names the descriptors; once the threads
    # are gone the store works again.
    from .conftest import run_child

    done = run_child(
        """
        import json, resource, sys, threading
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        from breakpilot_store import CheckpointStore
        from breakpilot_store.errors import BreakpilotStoreError
        store = CheckpointStore(sys.argv[1])
        made, refused, untyped = [], [], []
        release = threading.Event()
        def work(i):
            try:
                made.append(store.create(f"s{i}", "a", {"i": i}).id)
            except BreakpilotStoreError as exc:
                refused.append(f"{type(exc).__name__}: {exc}")
            except BaseException as exc:
                untyped.append(repr(exc))
            release.wait(60)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(300)]
        for thread in threads:
            thread.start()
        while len(made) + len(refused) + len(untyped) < len(threads):
            threading.Event().wait(0.01)
        release.set()
        for thread in threads:
            thread.join(60)
        after = store.create("after", "a", {}).id
        print(json.dumps({"made": made, "refused": refused, "untyped": untyped, "after": after}))
        """,
        str(db_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["untyped"] == []
    assert found["refused"], "the limit was never reached: the test proves nothing"
    assert all(
        text.startswith("StoreUnavailableError") and "no file descriptor left" in text
        for text in found["refused"]
    ), found["refused"][:3]
    assert found["after"] == "after:1"
    conn = sqlite3.connect(db_path)
    try:
        stored = {f"{sid}:1" for (sid,) in conn.execute("SELECT session_id FROM checkpoints")}
    finally:
        conn.close()
    assert stored == set(found["made"]) | {"after:1"}
    assert integrity(db_path) == "ok"
