"""Fault 7: the disk fills up (a 2 MB tmpfs): typed error, nothing lost, file intact."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakpilot_store import CheckpointStore
from breakpilot_store.errors import StoreFullError

from .conftest import dump, integrity


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, mounted for the test and unmounted afterwards (CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, capture_output=True)


def test_disk_full(small_disk: Path) -> None:
    path = small_disk / "full.db"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 512 * 1024)  # freed later, to show the store recovers
    with CheckpointStore(path) as store:
        _fill_and_recover(store, path, filler)
    assert integrity(path) == "ok"


def _fill_and_recover(store: CheckpointStore, path: Path, filler: Path) -> None:
    blob = "z" * 100_000
    written = []
    error = None
    for i in range(40):  # 40 x 100 KB cannot fit in 2 MB: the loop must hit the limit
        before = dump(path)
        try:
            written.append(store.create("s", "big", {"i": i, "blob": blob}))
        except StoreFullError as exc:
            error = exc
            break
    assert error is not None, "the disk never filled up"
    assert written, "not a single checkpoint fit"
    assert str(path) in str(error) and "full" in str(error)
    assert dump(path) == before  # the failed call wrote nothing

    # Every earlier checkpoint is still readable, through the store and raw.
    assert [cp.data["i"] for cp in store.list_checkpoints("s")] == list(range(len(written)))
    assert store.get(written[0].id).data == written[0].data
    assert integrity(path) == "ok"
    # Reads keep working while the disk is full.
    assert store.count("s") == len(written)

    # Space comes back: the next write succeeds with the next seq.
    filler.unlink()
    assert store.create("s", "small", {}).id == f"s:{len(written) + 1}"
