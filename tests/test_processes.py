"""Real processes: an agent that restarts in a new process, and several on one session."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import sys
    from breakpilot_store import CheckpointManager
    path, session, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mgr = CheckpointManager(session, store=path, compress_after=10**9, max_checkpoints=10**9)
    latest = mgr.get_latest()
    start = latest.data["step"] + 1 if latest else 0
    for step in range(start, start + count):
        print(mgr.create(f"step", {"step": step}).id, flush=True)
    """
)


def run_writer(path: Path, session: str, count: int) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", WRITER, str(path), session, str(count)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()


def test_restart_in_a_new_process_continues(db_path: Path) -> None:
    first = run_writer(db_path, "agent-7", 5)
    assert first == [f"agent-7:{i}" for i in range(1, 6)]
    second = run_writer(db_path, "agent-7", 3)  # resumes from get_latest()
    assert second == ["agent-7:6", "agent-7:7", "agent-7:8"]
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT seq, data ->> '$.step' FROM checkpoints ORDER BY seq").fetchall()
    assert rows == [(i, i - 1) for i in range(1, 9)]


def test_four_processes_on_one_session(db_path: Path) -> None:
    run_writer(db_path, "shared", 1)  # create the schema first: this test is about writes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), "shared", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    ids: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert err == ""
        ids.extend(out.split())
    seqs = sorted(int(i.rsplit(":", 1)[1]) for i in ids)
    assert seqs == list(range(2, 242))  # unique and contiguous after the first
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*), max(seq) FROM checkpoints").fetchone() == (241, 241)
        # The counter as an operator reads it: the view, and the row it is derived from
        # (nothing above base_seq 0 but the 241 creates).
        assert raw.execute("SELECT last_seq, checkpoints FROM session_overview").fetchone() == (
            241,
            241,
        )
        assert raw.execute("SELECT base_seq, base_count FROM sessions").fetchone() == (0, 0)
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
