"""diff, watch and list --follow: real processes, real SIGINT, a writer in another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from breakpilot_store import CheckpointStore
from breakpilot_store.core.diff import MISSING, diff_checkpoints, iter_changes

from .conftest import one_line_error

REPO = Path(__file__).resolve().parents[2]


def test_core_diff_paths_kinds_and_json_types():
    old = {"a": 1, "b": [1, 2, 3], "c": {"x": True}, "gone": None, "same": "s"}
    new = {"a": 1.0, "b": [1, 5], "c": {"x": 1}, "same": "s", "new": {"k": []}}
    got = [(c.path, c.kind, c.old, c.new) for c in iter_changes(old, new, "data")]
    assert got == [
        ("data['a']", "changed", 1, 1.0),  # 1 and 1.0 are stored differently
        ("data['b'][1]", "changed", 2, 5),
        ("data['b'][2]", "removed", 3, MISSING),
        ("data['c']['x']", "changed", True, 1),
        ("data['gone']", "removed", None, MISSING),
        ("data['new']", "added", MISSING, {"k": []}),
    ]
    assert list(iter_changes({"x": [1]}, {"x": [1]}, "data")) == []


def test_diff_command_human_and_json(run, tmp_path):
    path = tmp_path / "d.db"
    with CheckpointStore(path) as store:
        a = store.create("s", "plan", {"step": 1, "todo": ["a", "b"]}, {"m": 1})
        b = store.create("s", "act", {"step": 2, "todo": ["a"], "done": "a"}, {"m": 1})
        other = store.create("t", "plan", {"step": 1, "todo": ["a", "b"]}, {"m": 1})
    result = run("--db", path, "--json", "diff", a.id, b.id)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["a"] == "s:1" and got["b"] == "s:2"
    assert (got["added"], got["removed"], got["changed"]) == (1, 1, 2)
    assert got["changes"] == [
        {"path": "name", "kind": "changed", "old": "plan", "new": "act"},
        {"path": "data['step']", "kind": "changed", "old": 1, "new": 2},
        {"path": "data['todo'][1]", "kind": "removed", "old": "b"},
        {"path": "data['done']", "kind": "added", "new": "a"},
    ]
    with CheckpointStore(path, readonly=True, migrate=False) as store:
        expected = diff_checkpoints(store.get(a.id), store.get(b.id))
    assert [c.to_dict() for c in expected] == got["changes"]
    result = run("--db", path, "diff", a.id, b.id)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("--- s:1  plan")
    assert "~ data['step']" in lines and "    - 1" in lines and "    + 2" in lines
    assert "+ data['done']" in lines and "- data['todo'][1]" in lines
    assert "4 differences: 1 added, 1 removed, 2 changed" in result.stderr
    # Across sessions, and identical ones.
    result = run("--db", path, "diff", a.id, other.id)
    assert result.exit_code == 0 and result.stdout.count("\n") == 2
    assert "no differences" in result.stderr
    result = run("--db", path, "diff", a.id, "s:99")
    assert result.exit_code == 1
    assert "no checkpoint 's:99'" in one_line_error(result)


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BREAKPILOT_STORE_URL"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "breakpilot_store", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def _read_lines(proc: subprocess.Popen, n: int, timeout: float = 30) -> list[str]:
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


WRITER = """
import sys
from breakpilot_store import CheckpointStore
with CheckpointStore(sys.argv[1]) as store:
    for step in sys.argv[2:]:
        if step == "clear":
            store.clear("w")
        elif step == "compress":
            store.compress("w", compress_after=2)
        elif step == "delete":
            store.delete_session("w")
        else:
            store.create("w", step, {"step": step})
"""


def _write(path: Path, *steps: str) -> None:
    subprocess.run(
        [sys.executable, "-c", WRITER, str(path), *steps],
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_watch_prints_each_new_checkpoint_through_clear_and_compression(tmp_path):
    path = tmp_path / "w.db"
    _write(path, "old1", "old2")
    watcher = _cli("--db", str(path), "--json", "watch", "w", "--interval", "0.1")
    try:
        time.sleep(1.5)  # the watcher has started and looked once
        _write(path, "a", "b", "c")
        first = _read_lines(watcher, 3)
        _write(path, "clear", "d", "e", "f", "g", "compress", "h")
        second = _read_lines(watcher, 5)
        _write(path, "delete", "again1", "again2")
        third = _read_lines(watcher, 2)
    finally:
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=20)
    got = [json.loads(line) for line in first + second]
    # Only what landed after it started, each once, in order, whatever happened between.
    assert [g["id"] for g in got] == [f"w:{i}" for i in range(3, 11)]
    assert [g["name"] for g in got] == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert set(got[0]) == {"id", "name", "timestamp", "data", "metadata"}
    # Deleted and begun again: followed from its new first checkpoint.
    assert [json.loads(line)["id"] for line in third] == ["w:1", "w:2"]
    assert watcher.returncode == 0  # Ctrl-C is how it ends
    assert out == ""  # quietly: no traceback, no "Aborted!"
    assert "Traceback" not in err and "Aborted" not in err


def test_list_follow_lists_then_follows_and_watch_waits_for_a_new_session(tmp_path):
    path = tmp_path / "f.db"
    _write(path, "one", "two")
    follower = _cli("--db", str(path), "list", "w", "--follow")
    waiter = _cli("--db", str(path), "--json", "watch", "later", "--interval", "0.1")
    try:
        head = _read_lines(follower, 4)
        _write(path, "three")
        more = _read_lines(follower, 1)
        time.sleep(0.5)
        subprocess.run(
            [sys.executable, "-c", WRITER.replace('"w"', '"later"'), str(path), "first"],
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        appeared = _read_lines(waiter, 1)
    finally:
        for proc in (follower, waiter):
            proc.send_signal(signal.SIGINT)
        _, follow_err = follower.communicate(timeout=20)
        _, wait_err = waiter.communicate(timeout=20)
    assert head[0].split()[:2] == ["seq", "name"]
    assert [line.split()[:2] for line in head[2:]] == [["1", "one"], ["2", "two"]]  # oldest first
    assert more[0].split()[:2] == ["3", "three"]
    assert json.loads(appeared[0])["id"] == "later:1"  # from its very first checkpoint
    assert "waiting for session 'later'" in wait_err
    assert follower.returncode == 0 and waiter.returncode == 0
    assert "Traceback" not in follow_err + wait_err
