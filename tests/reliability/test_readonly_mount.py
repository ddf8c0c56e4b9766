"""A database on a read-only mount (EROFS), as a backup or snapshot is mounted.

Found by the campaign: the read-only fallback only knew a non-writable directory
(``SQLITE_READONLY_DIRECTORY``); on a read-only mount SQLite says ``SQLITE_CANTOPEN``,
so a cleanly closed database there could not be read at all, neither by
``CheckpointStore(..., readonly=True)`` nor by the CLI's ``sessions`` and ``export``.
A real tmpfs is mounted and remounted ``ro`` (root only; skipped where mounting is not
permitted).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from breakpilot_store import CheckpointStore, ReadOnlyStoreError
from breakpilot_store.cli.commands import cli

from .conftest import run_child


def _mount(where: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", *options, str(where)], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MB tmpfs; the test remounts it read-only with ``remount_ro``."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (not permitted here)")
    done = _mount(where, "-t", "tmpfs", "-o", "size=8m", "tmpfs")
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30)


def remount_ro(where: Path) -> None:
    done = _mount(where, "-o", "remount,ro")
    assert done.returncode == 0, done.stderr
    with pytest.raises(OSError):
        (where / "probe").write_text("x")  # really read-only


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_cleanly_closed_database_on_a_readonly_mount(mount: Path) -> None:
    path = mount / "agents.db"
    with CheckpointStore(path) as store:
        for i in range(5):
            store.create("agent-7", "step", {"i": i})
        store.import_checkpoints("agent-8", [store.get("agent-7:1").to_dict()])
    remount_ro(mount)
    before = _digest(mount)
    for readonly in (True, False):
        with CheckpointStore(path, readonly=readonly) as store:
            assert [cp.seq for cp in store.iter_checkpoints("agent-7")] == [1, 2, 3, 4, 5]
            assert [i.session_id for i in store.list_sessions()] == ["agent-7", "agent-8"]
            with pytest.raises(ReadOnlyStoreError):
                store.create("agent-7", "step", {})
    runner = CliRunner()
    for args in (["sessions"], ["export", "agent-7"], ["doctor"], ["list", "agent-8"]):
        result = runner.invoke(cli, ["--db", str(path), *args])
        assert result.exit_code == 0, (args, result.output)
    assert '"agent-7:5"' in runner.invoke(cli, ["--db", str(path), "export", "agent-7"]).stdout
    assert _digest(mount) == before  # nothing was written, nothing created


def test_unmerged_wal_on_a_readonly_mount_is_a_typed_error(mount: Path) -> None:
    path = mount / "agents.db"
    # A writer killed before it could merge its -wal (os._exit: no close).
    child = run_child(
        """
        import os, sys
        from breakpilot_store import CheckpointStore
        store = CheckpointStore(sys.argv[1])
        for i in range(3):
            store.create("agent-7", "step", {"i": i})
        os._exit(0)
        """,
        str(path),
    )
    assert child.returncode == 0, child.stderr
    assert Path(f"{path}-wal").stat().st_size > 0
    Path(f"{path}-shm").unlink()
    remount_ro(mount)
    before = _digest(mount)
    with pytest.raises(ReadOnlyStoreError, match="-wal still holds commits"):
        CheckpointStore(path, readonly=True)
    result = CliRunner().invoke(cli, ["--db", str(path), "sessions"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "-wal" in result.stderr
    assert _digest(mount) == before
