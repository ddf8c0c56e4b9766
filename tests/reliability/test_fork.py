"""Fault 11: a process forks after opening a store; the child uses it, the parent goes on."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from breakpilot_store import CheckpointManager, CheckpointStore

from .conftest import dump, integrity

SAFETY = 60


def _fork(child: Callable[[], object]) -> tuple[int, object]:
    """Run ``child`` in a forked process; return the pid and a reader for its JSON result."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # pytest's threads make fork warn; the test wants fork
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_fd)
            result = child()
            gc.collect()  # drop the parent's connection objects here, in the child
            os.write(write_fd, json.dumps({"ok": result}).encode())
            code = 0
        except BaseException:
            os.write(write_fd, json.dumps({"error": traceback.format_exc()}).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _wait(pid: int, read_fd: int) -> object:
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b"{}")
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out["ok"]


def _warm(store: CheckpointStore) -> None:
    """Give the parent pooled and per-thread connections, as a busy agent has."""
    store.create("parent", "warm", {"n": 0})
    assert store.get("parent:1") is not None
    store.list_checkpoints("parent")
    other = threading.Thread(target=lambda: store.create("parent", "thread", {"n": 1}))
    other.start()
    other.join()


def test_child_uses_store_opened_before_fork(db_path: Path) -> None:
    store = CheckpointStore(db_path)
    manager = CheckpointManager("parent", store=store)
    _warm(store)

    def child() -> list[str]:
        ids = [store.create("child", "c", {"i": i}).id for i in range(50)]
        assert [cp.id for cp in store.list_checkpoints("child")] == ids
        assert store.get_latest("parent").name == "thread"  # sees the parent's data
        ids.append(manager.create("from-child", {}).id)
        store.close()
        return ids

    pid, reader = _fork(child)
    ids = _wait(pid, reader)
    assert ids[:50] == [f"child:{i}" for i in range(1, 51)]
    assert ids[50] == "parent:3"

    # The parent's connections were not disturbed: it goes on reading and writing.
    assert store.get_latest("child").id == "child:50"
    assert store.create("parent", "after-fork", {}).id == "parent:4"
    assert manager.create("again", {}).id == "parent:5"
    assert len(store.list_checkpoints("child")) == 50
    assert store.wal_checkpoint("PASSIVE")[0] == 0
    store.close()
    assert integrity(db_path) == "ok"
    assert len(dump(db_path)[1]) == 55


def test_parent_and_child_write_at_once_after_fork(db_path: Path) -> None:
    store = CheckpointStore(db_path)
    _warm(store)
    # Fork with a read transaction open in the parent (a streaming iterator).
    stream = store.iter_checkpoints("parent")
    first = next(stream)

    def child() -> list[int]:
        return [store.create("shared", "child", {"i": i}).seq for i in range(200)]

    pid, reader = _fork(child)
    mine = [store.create("shared", "parent", {"i": i}).seq for i in range(200)]
    theirs = _wait(pid, reader)
    assert sorted(mine + theirs) == list(range(1, 401))  # unique and gapless
    assert [first.id, *(cp.id for cp in stream)] == ["parent:1", "parent:2"]
    assert store.count("shared") == 400
    store.close()
    assert integrity(db_path) == "ok"


def test_child_that_never_touches_the_store(db_path: Path) -> None:
    store = CheckpointStore(db_path)
    _warm(store)
    pid, reader = _fork(lambda: "idle")
    assert _wait(pid, reader) == "idle"
    assert store.create("parent", "after", {}).id == "parent:3"
    store.close()
    assert integrity(db_path) == "ok"


def test_parent_closing_does_not_pull_the_wal_from_under_the_child(db_path: Path) -> None:
    # Without the at-fork dispose the child would write through the parent's inherited
    # connection, which holds none of SQLite's POSIX locks in the child: the parent's
    # close would then see itself as the last user, checkpoint, and unlink the -wal the
    # child is still appending to, losing every checkpoint the child acknowledged.
    store = CheckpointStore(db_path)
    _warm(store)
    go_read, go_write = os.pipe()

    def child() -> list[str]:
        ids = [store.create("child", "c", {"i": 0}).id]
        os.read(go_read, 1)  # wait until the parent has closed its store
        ids += [store.create("child", "c", {"i": i}).id for i in range(1, 50)]
        gc.collect()
        return ids

    pid, reader = _fork(child)
    os.close(go_read)
    # Let the child write its first checkpoint, then close every parent connection.
    while store.count("child") < 1:
        os.sched_yield()
    store.close()
    gc.collect()
    os.write(go_write, b"x")
    os.close(go_write)
    ids = _wait(pid, reader)
    assert len(ids) == 50
    rows = dump(db_path)[1]
    assert [f"{r[0]}:{r[1]}" for r in rows if r[0] == "child"] == ids
    assert integrity(db_path) == "ok"


def _import_entries(inside: threading.Event, count: int, pause: float) -> Any:
    """Foreign entries; halfway the generator signals and pauses inside the transaction."""
    for i in range(count):
        if i == count // 2:
            inside.set()
            time.sleep(pause)
        yield {
            "id": f"src:{i + 1}",
            "name": "n",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"i": i},
        }


def test_fork_while_another_thread_is_inside_an_import(db_path: Path) -> None:
    # Found by the campaign: the child inherited SQLite's in-process lock state with the
    # WAL write lock held by the importing thread's connection, and every write from
    # the child failed as busy, forever, even through a brand-new store. Now fork()
    # waits for the other thread's transaction to end (forkgate).
    store = CheckpointStore(db_path, busy_timeout=3)
    _warm(store)
    inside = threading.Event()
    importer = threading.Thread(
        target=lambda: store.import_checkpoints("imp", _import_entries(inside, 400, 0.5))
    )
    importer.start()
    assert inside.wait(SAFETY)

    def child() -> list[Any]:
        ids = [store.create("child", "c", {"i": i}).id for i in range(3)]
        with CheckpointStore(db_path, busy_timeout=3) as fresh:
            ids.append(fresh.create("child-fresh", "c", {}).id)
            ids.append(fresh.import_checkpoints("child-imp", [store.get("child:1").to_dict()]))
        return [*ids, store.count("imp")]

    pid, reader = _fork(child)
    importer.join(SAFETY)
    assert _wait(pid, reader) == ["child:1", "child:2", "child:3", "child-fresh:1", 1, 400]
    # The parent goes on too, and nothing was lost on either side.
    assert store.create("parent", "after", {}).id == "parent:3"
    store.close()
    assert integrity(db_path) == "ok"
    rows = dump(db_path)[1]
    assert sum(1 for r in rows if r[0] == "imp") == 400
    assert [r[1] for r in rows if r[0] == "child"] == [1, 2, 3]


def test_fork_does_not_wait_for_an_idle_iterator_on_another_thread(db_path: Path) -> None:
    # A sibling: an export stream left open on another thread (a slow HTTP client)
    # holds a read transaction between pieces; a fork must neither wait for it nor
    # leave the child unable to write.
    store = CheckpointStore(db_path, busy_timeout=3)
    for i in range(600):
        store.create("big", "n", {"i": i})
    opened = threading.Event()
    done = threading.Event()
    pieces: list[int] = []

    def reader_thread() -> None:
        stream = store.iter_checkpoints("big")
        pieces.append(next(stream).seq)
        opened.set()
        done.wait(SAFETY)
        pieces.extend(cp.seq for cp in stream)

    thread = threading.Thread(target=reader_thread)
    thread.start()
    assert opened.wait(SAFETY)
    started = time.monotonic()
    pid, reader = _fork(lambda: [store.create("big", "child", {}).seq, store.count("big")])
    forked_in = time.monotonic() - started
    assert _wait(pid, reader) == [601, 601]
    done.set()
    thread.join(SAFETY)
    assert pieces == list(range(1, 601))  # the parent's snapshot, unaffected
    assert forked_in < 10  # a safety bound, far below the gate's 30 s wait
    store.close()
    assert integrity(db_path) == "ok"


def test_forks_while_threads_write(db_path: Path) -> None:
    # Forks land at random points of other threads' creates, compressions and reads:
    # every child can write through the inherited store and a new one, and the
    # parent's threads lose nothing.
    store = CheckpointStore(db_path, busy_timeout=20)
    stop = threading.Event()
    acknowledged: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            seqs = acknowledged.setdefault(name, [])
            while not stop.is_set():
                # Short pauses: SQLite's busy handler polls, so writers that never pause
                # could starve the child's first write (a fairness matter, not a fork's).
                time.sleep(0.002)
                seqs.append(store.create(name, "w", {"n": len(seqs)}).seq)
                store.get_latest(name)
                if len(seqs) % 25 == 0:
                    store.list_checkpoints(name, limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    results = []
    for round_ in range(6):
        time.sleep(0.05)

        def child(round_: int = round_) -> list[str]:
            first = store.create(f"child{round_}", "c", {}).id
            with CheckpointStore(db_path, busy_timeout=20) as fresh:
                second = fresh.create(f"child{round_}", "c", {}).id
            return [first, second]

        pid, reader = _fork(child)
        results.append(_wait(pid, reader))
    stop.set()
    for thread in threads:
        thread.join(SAFETY)
    assert not errors, errors
    assert results == [[f"child{r}:1", f"child{r}:2"] for r in range(6)]
    store.close()
    assert integrity(db_path) == "ok"
    held: dict[str, list[int]] = {}
    for session, seq, *_ in dump(db_path)[1]:
        held.setdefault(session, []).append(seq)
    for name, seqs in acknowledged.items():
        assert held[name] == seqs == list(range(1, len(seqs) + 1))


def _async_child(store: Any) -> Callable[[], object]:
    import asyncio

    def child() -> object:
        async def main() -> list[str]:
            # A safety bound: the inherited store's write went to the parent's writer
            # thread, which does not exist in the child, and waited forever.
            created = await asyncio.wait_for(store.create("child", "n", {"k": 1}), SAFETY / 2)
            second = await asyncio.wait_for(store.create("child", "n", {"k": 2}), SAFETY / 2)
            held = await asyncio.wait_for(store.count("parent"), SAFETY / 2)
            return [created.id, second.id, str(held)]

        return asyncio.run(main())

    return child


def test_an_inherited_async_store_works_in_the_child(tmp_path: Path) -> None:
    # Round 3: the async store's threads (group-commit writer, readers) are not
    # inherited by a forked child; its first write hung forever.
    import asyncio

    from breakpilot_store import AsyncCheckpointStore

    path = tmp_path / "async-fork.db"
    store = AsyncCheckpointStore(path)
    asyncio.run(store.create("parent", "n", {}))
    assert _wait(*_fork(_async_child(store))) == ["child:1", "child:2", "1"]
    # The parent's threads go on as before.
    assert asyncio.run(store.create("parent", "n", {})).id == "parent:2"
    asyncio.run(store.close())
    assert {row[0] for row in dump(path)[0]} == {"child", "parent"}
    assert integrity(path) == "ok"


def test_an_inherited_in_memory_async_store_works_in_the_child() -> None:
    import asyncio

    from breakpilot_store import AsyncCheckpointStore

    store = AsyncCheckpointStore("sqlite://")
    asyncio.run(store.create("parent", "n", {}))
    # The child's copy of the database is its own: its one thread is made anew.
    assert _wait(*_fork(_async_child(store))) == ["child:1", "child:2", "1"]
    assert asyncio.run(store.count("child")) == 0  # the parent's copy never saw it
    asyncio.run(store.close())


_SERIAL_ADD = text(
    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
    "SELECT :sid, coalesce(max(seq), 0) + 1, 'serial', '2026-01-01T00:00:00.000000+00:00', "
    "'{}', '{}' FROM checkpoints WHERE session_id = :sid"
)


def _serial_add(store: CheckpointStore, session_id: str) -> None:
    store.run(
        lambda conn: conn.execute(_SERIAL_ADD, {"sid": session_id}),
        write=True,
        hot=True,
        serial=True,
    )


def test_a_serial_write_in_the_child_while_the_parent_held_the_lock(db_path: Path) -> None:
    # store.run(serial=True) queues on a lock of the store: a thread of the parent that
    # held it when the process forked never releases the child's copy. The child starts
    # with a lock of its own (and without the parent's shared connection).
    store = CheckpointStore(db_path)
    _warm(store)
    _serial_add(store, "parent")  # the parent's shared connection is open
    store._serial._turn.acquire()  # as a thread about to begin a serial write holds it

    def child() -> int:
        signal.alarm(SAFETY)  # a child stuck on the inherited lock dies, and fails
        store.create("child", "c", {})
        for _ in range(3):
            _serial_add(store, "child")
        return store.count("child")

    try:
        pid, reader = _fork(child)
        assert _wait(pid, reader) == 4
    finally:
        store._serial._turn.release()
    _serial_add(store, "parent")
    assert store.count("parent") == 4
    store.close()
    assert integrity(db_path) == "ok"
