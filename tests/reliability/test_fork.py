"""Fault 11: a process forks after opening a store; the child uses it, the parent goes on."""

from __future__ import annotations

import gc
import json
import os
import threading
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

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
