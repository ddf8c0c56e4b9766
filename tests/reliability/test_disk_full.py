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


def test_disk_full_under_group_commit(small_disk: Path) -> None:
    # Round 3: the async store's group commit. A group whose COMMIT failed on the full
    # disk left SQLAlchemy's (inactive) transaction on the writer's connection, and every
    # later group failed with "already initialized a Transaction" (a DatabaseError),
    # even after space came back; only lone writes (another path) still worked.
    import asyncio

    from breakpilot_store import AsyncCheckpointStore, BreakpilotStoreError

    path = small_disk / "group.db"
    filler = small_disk / "filler"

    async def main() -> tuple[set[str], list[str], list[str]]:
        async with AsyncCheckpointStore(path) as store:
            acked: list[str] = []
            errors: set[str] = set()

            async def agent(k: int) -> None:
                for _ in range(12):
                    try:
                        acked.append((await store.create(f"s{k}", "n", {"b": "y" * 30_000})).id)
                    except BreakpilotStoreError as exc:
                        errors.add(type(exc).__name__)

            await store.create("warm", "n", {})
            try:
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            except OSError:
                pass  # full; the store's next pages have nowhere to go
            await asyncio.gather(*(agent(k) for k in range(6)))
            filler.unlink()
            after = await asyncio.gather(*(store.create("after", "n", {"k": k}) for k in range(8)))
            return errors, acked, [cp.id for cp in after]

    errors, acked, after = asyncio.run(asyncio.wait_for(main(), 120))
    assert errors == {"StoreFullError"}
    assert sorted(after, key=lambda i: int(i.split(":")[1])) == [f"after:{k}" for k in range(1, 9)]
    held = {f"{sid}:{seq}" for sid, seq in raw_ids(path)}
    assert set(acked) <= held  # nothing acknowledged was lost
    assert integrity(path) == "ok"


def raw_ids(path: Path) -> list[tuple[str, int]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT session_id, seq FROM checkpoints").fetchall()
    finally:
        conn.close()
