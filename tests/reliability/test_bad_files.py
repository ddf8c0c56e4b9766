"""Faults 9 and 10, and the SQLite version floor: refuse clearly, write nothing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store import engine as engine_module
from breakpilot_store.engine import check_sqlite_version
from breakpilot_store.errors import (
    CorruptDatabaseError,
    SchemaVersionError,
    UnsupportedDatabaseError,
)
from breakpilot_store.migrate import HEAD

from .conftest import raw_connect


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _good_db(path: Path, count: int = 200) -> None:
    with CheckpointStore(path) as store:
        for i in range(count):
            store.create(f"s{i % 3}", "n", {"i": i, "pad": "p" * 500})
    path.with_name(path.name + ".lock").unlink(missing_ok=True)
    assert not path.with_name(path.name + "-wal").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is my notes file\n" * 200,
        b"SQLite format 3\x00" + os.urandom(8000),  # right magic, garbage after it
        os.urandom(4096),
        b"\x00" * 100,
    ],
    ids=["text", "bad-header", "random", "zeros"],
)
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    before = _listing(tmp_path)
    for opener in (lambda: CheckpointStore(path), lambda: CheckpointManager("s", store=path)):
        with pytest.raises(CorruptDatabaseError) as info:
            opener()
        assert str(path) in str(info.value)
        assert _listing(tmp_path) == before  # nothing overwritten, no sidecar files


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.25, 0.5, 0.75, 0.99])
def test_truncated_database(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "cut.db"
    _good_db(path)
    data = path.read_bytes()
    size = max(1, int(len(data) * keep)) if keep else 17
    path.write_bytes(data[:size])
    before = _listing(tmp_path)
    with pytest.raises(CorruptDatabaseError) as info:
        CheckpointStore(path)
    assert str(path) in str(info.value)
    assert _listing(tmp_path) == before


def test_newer_revision_is_refused_before_any_write(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _good_db(path, count=3)
    conn = raw_connect(path, readonly=False)
    conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    conn.close()
    before = _listing(tmp_path)
    for kwargs in ({}, {"migrate": False}, {"readonly": True}):
        with pytest.raises(SchemaVersionError) as info:
            CheckpointStore(path, **kwargs)
        message = str(info.value)
        assert "'ffff'" in message and f"'{HEAD}'" in message and str(path) in message
    with pytest.raises(SchemaVersionError):
        CheckpointManager("s", store=path)
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("version", [(3, 34, 1), (3, 7, 17), (2, 99, 99)])
def test_old_sqlite_is_refused(version: tuple[int, int, int]) -> None:
    with pytest.raises(UnsupportedDatabaseError) as info:
        check_sqlite_version(version)
    assert ".".join(map(str, version)) in str(info.value) and "3.35.0" in str(info.value)


def test_new_enough_sqlite_is_accepted() -> None:
    check_sqlite_version((3, 35, 0))
    check_sqlite_version((3, 46, 1))
    check_sqlite_version()  # the linked library (3.40 here)


def test_store_refuses_old_linked_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module.sqlite3, "sqlite_version_info", (3, 31, 1))
    path = tmp_path / "never.db"
    with pytest.raises(UnsupportedDatabaseError, match="3.31.1"):
        CheckpointStore(path)
    assert not path.exists()
    monkeypatch.undo()
    assert sqlite3.sqlite_version_info >= (3, 35)
    CheckpointStore(path).close()
