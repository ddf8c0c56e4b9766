"""Faults 5 and 6: a lock held too long, and a long reader against a growing WAL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.errors import StoreBusyError

from .conftest import dump, integrity, raw_connect


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def test_lock_held_too_long_raises_busy_naming_the_file(db_path: Path) -> None:
    store = CheckpointStore(db_path, busy_timeout=0.2)
    store.create("s", "before", {"n": 1})
    manager = CheckpointManager("s", store=store)
    before = dump(db_path)

    operator = raw_connect(db_path, readonly=False)  # an operator's sqlite3 session
    operator.execute("BEGIN IMMEDIATE")
    try:
        calls = [
            lambda: store.create("s", "blocked", {"n": 2}),
            lambda: store.create("new-session", "blocked", {}),
            lambda: store.clear("s"),
            lambda: store.compress("s", compress_after=1),
            lambda: store.import_checkpoints("s", [dict(store.get("s:1").to_dict())]),
            lambda: manager.create("blocked", {}),
        ]
        for call in calls:
            with pytest.raises(StoreBusyError) as info:
                call()
            assert str(db_path) in str(info.value)
            assert "locked" in str(info.value)
            assert info.value.__cause__ is not None  # the driver's error is kept
        # Readers are not blocked by a writer in WAL mode.
        assert [cp.name for cp in store.list_checkpoints("s")] == ["before"]
    finally:
        operator.rollback()
        operator.close()

    assert dump(db_path) == before  # nothing half-written
    assert store.create("s", "after", {"n": 3}).id == "s:2"  # seq 2: nothing was used up
    store.close()
    assert integrity(db_path) == "ok"


def test_long_reader_does_not_block_writers_and_wal_is_bounded(db_path: Path) -> None:
    store = CheckpointStore(db_path)
    store.create("s", "first", {})
    blob = "y" * 8000  # two pages a checkpoint: the WAL passes its 1000-page autocheckpoint

    reader = raw_connect(db_path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)
    for i in range(1500):
        store.create("s", "work", {"i": i, "blob": blob})
    # The reader still sees its snapshot; the writer was never blocked.
    assert reader.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)
    grown = os.path.getsize(_wal(db_path))
    assert grown > 1000 * 4096  # the reader pinned the WAL past the autocheckpoint
    busy, _, _ = store.wal_checkpoint("PASSIVE")
    reader.rollback()
    reader.close()

    # Once the reader has left, the maintenance call resets the WAL to nothing ...
    busy, log_pages, done = store.wal_checkpoint("TRUNCATE")
    assert busy == 0 and log_pages == done
    assert os.path.getsize(_wal(db_path)) == 0
    # ... and with no reader, autocheckpoints keep reusing it: it stops growing.
    for i in range(1500):
        store.create("s", "more", {"i": i, "blob": blob})
    assert os.path.getsize(_wal(db_path)) < grown
    assert store.count("s") == 3001
    store.close()
    assert integrity(db_path) == "ok"


def test_wal_checkpoint_rejects_unknown_mode(db_path: Path) -> None:
    from breakpilot_store.errors import CheckpointTypeError, CheckpointValueError

    with CheckpointStore(db_path) as store:
        with pytest.raises(CheckpointValueError, match="mode"):
            store.wal_checkpoint("TRUNCATE; DROP TABLE sessions")
        with pytest.raises(CheckpointTypeError, match="mode"):
            store.wal_checkpoint(None)  # type: ignore[arg-type]
