"""Fault 8: a read-only file or directory: reads work, writes name the file and fail."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakpilot_store import CheckpointStore
from breakpilot_store.migrate import downgrade

from .conftest import run_child

# CI runs as root, which ignores file modes: the child drops the capabilities that let it.
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]

CHILD = """
import json, sys
from breakpilot_store import CheckpointManager, CheckpointStore

out = {}
try:
    store = CheckpointStore(sys.argv[1])
except Exception as exc:
    print(json.dumps({"open": [type(exc).__name__, str(exc)]}))
    sys.exit(0)
out["read"] = [cp.to_dict() for cp in store.list_checkpoints("s")]
out["export"] = store.export_json("s")
out["count"] = store.count("s")
writes = {
    "create": lambda: store.create("s", "w", {}),
    "create-new-session": lambda: store.create("other", "w", {}),
    "manager": lambda: CheckpointManager("s", store=store).create("w", {}),
    "clear": lambda: store.clear("s"),
    "compress": lambda: store.compress("s", compress_after=1),
    "import": lambda: store.import_checkpoints("s", [store.get("s:1").to_dict() | {"id": "x:1"}]),
}
for what, call in writes.items():
    try:
        call()
        out[what] = ["no error", ""]
    except Exception as exc:
        out[what] = [type(exc).__name__, str(exc)]
store.close()
print(json.dumps(out))
"""


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "ro"
    directory.mkdir()
    yield directory
    directory.chmod(0o755)  # let pytest clean up
    for item in directory.iterdir():
        item.chmod(0o644)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _make(directory: Path, at_base: bool = False) -> Path:
    path = directory / "agent.db"
    with CheckpointStore(path) as store:
        for i in range(3):
            store.create("s", f"n{i}", {"i": i})
        if at_base:
            downgrade(store.engine, "base")
    (directory / "agent.db.lock").unlink(missing_ok=True)
    assert sorted(p.name for p in directory.iterdir()) == ["agent.db"]  # no -wal/-shm
    return path


def _lock(directory: Path, path: Path, what: str) -> None:
    if what in ("file", "both"):
        path.chmod(0o444)
    if what in ("directory", "both"):
        directory.chmod(0o555)


@pytest.mark.parametrize("what", ["file", "directory", "both"])
def test_readonly_reads_work_and_writes_name_the_file(files: Path, what: str) -> None:
    path = _make(files)
    _lock(files, path, what)
    before = path.read_bytes()
    result = run_child(CHILD, str(path), prefix=NO_DAC)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "open" not in out, out
    assert [cp["data"] for cp in out["read"]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert json.loads(out["export"]) == out["read"] and out["count"] == 3
    for call in ("create", "create-new-session", "manager", "clear", "compress", "import"):
        kind, message = out[call]
        assert kind == "ReadOnlyStoreError", (call, out[call])
        assert str(path) in message and "read-only" in message, (call, message)
    assert path.read_bytes() == before  # nothing written
    # With the rights back, the store writes again and the numbering continues.
    files.chmod(0o755)
    path.chmod(0o644)
    with CheckpointStore(path) as store:
        assert store.create("s", "later", {}).id == "s:4"


@pytest.mark.parametrize("what", ["file", "directory"])
def test_readonly_out_of_date_schema_is_refused_at_open(files: Path, what: str) -> None:
    path = _make(files, at_base=True)
    _lock(files, path, what)
    before = path.read_bytes()
    result = run_child(CHILD, str(path), prefix=NO_DAC)
    assert result.returncode == 0, result.stderr
    kind, message = json.loads(result.stdout)["open"]
    assert kind == "ReadOnlyStoreError" and str(path) in message
    assert path.read_bytes() == before


def test_capabilities_really_dropped(tmp_path: Path) -> None:
    # Guard for the tests above: in the child, root must not write a 0444 file.
    target = tmp_path / "guard"
    target.write_text("x")
    target.chmod(0o444)
    result = run_child("import sys; open(sys.argv[1], 'a').write('y')", str(target), prefix=NO_DAC)
    assert result.returncode != 0 and "PermissionError" in result.stderr
    assert os.geteuid() != 0 or target.read_text() == "x"
