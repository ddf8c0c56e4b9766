"""Fault 4: a process killed in the middle of a migration leaves no half schema."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from breakpilot_store import CheckpointStore
from breakpilot_store.migrate import HEAD, downgrade

from .conftest import integrity, raw_connect, run_child, tables

HEAD_OBJECTS = {
    "alembic_version",
    "sessions",
    "checkpoints",
    "ix_checkpoints_session_id_name_seq",
    "ix_checkpoints_session_id_origin_id",
    "session_overview",
    "checkpoint_overview",
    "adk_sessions",
    "adk_app_states",
    "adk_user_states",
    # revision 0004: LangGraph threads and pending writes
    "langgraph_threads",
    "langgraph_writes",
    "ix_langgraph_threads_thread_id_checkpoint_ns",
    "leases",
}

# The child wraps one alembic operation so that its n-th call SIGKILLs the process, then
# opens the store (which runs the upgrade). It must never get to print "survived".
KILLER = """
import os, signal, sys
import alembic.op

path, op_name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
real = getattr(alembic.op, op_name)
calls = 0

def hooked(*args, **kwargs):
    global calls
    calls += 1
    if calls == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

setattr(alembic.op, op_name, hooked)
from breakpilot_store import CheckpointStore
CheckpointStore(path)
print("survived", flush=True)
"""


def _revision(path: Path) -> list[tuple]:
    conn = raw_connect(path)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("start", ["brand-new", "at-base"])
# Kill points in revision 0001 (its second table, index, view) and in 0002 (its first
# rename: 0001 runs two op.execute calls, 0002's DROP VIEW is the third; its drop_index),
# and in 0003 (its leases table: the sixth create_table, after 0001's two and 0005's three).
@pytest.mark.parametrize(
    "op_name,nth",
    [
        ("create_table", 2),
        ("create_index", 2),
        ("execute", 2),
        ("execute", 4),
        ("drop_index", 1),
        ("create_table", 6),
    ],
)
def test_killed_mid_migration(tmp_path: Path, start: str, op_name: str, nth: int) -> None:
    path = tmp_path / "migrating.db"
    if start == "at-base":
        store = CheckpointStore(path)
        downgrade(store.engine, "base")
        store.close()
    before = tables(path) if path.exists() else set()

    killed = run_child(KILLER, str(path), op_name, str(nth))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "survived" not in killed.stdout

    # Never half-way: exactly the objects there were before the upgrade began.
    assert integrity(path) == "ok"
    assert tables(path) == before
    if "alembic_version" in before:
        assert _revision(path) == []

    # The next open completes the upgrade.
    with CheckpointStore(path) as store:
        assert store.create("s", "after", {"ok": True}).id == "s:1"
    assert tables(path) == HEAD_OBJECTS
    assert _revision(path) == [(HEAD,)]
    assert integrity(path) == "ok"
