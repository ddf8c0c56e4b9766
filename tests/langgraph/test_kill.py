"""A process running a graph is SIGKILLed mid-run; a new process resumes the thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from breakpilot_store.langgraph import BreakpilotSaver
from tests.langgraph.graphs import counting_graph, start_count

ROOT = Path(__file__).resolve().parents[2]
STEPS = 10


def worker(url: str, thread: str, mode: str, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.langgraph.kill_worker",
            url,
            thread,
            mode,
            str(STEPS),
            str(delay),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_sigkill_mid_run_then_a_new_process_resumes_to_the_same_state(
    backend_url: str, raw: Any
) -> None:
    # The same graph run through without a kill (in this process: same code, no start-up).
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        result = counting_graph(saver, STEPS).invoke(
            start_count(), {"configurable": {"thread_id": "uninterrupted"}}
        )
    reference = {
        "count": result["count"],
        "messages": [[type(m).__name__, m.id, m.content] for m in result["messages"]],
    }
    assert reference["count"] == STEPS and len(reference["messages"]) == STEPS + 1

    victim = worker(backend_url, "killed", "run", 0.15)
    db = raw()
    deadline = time.monotonic() + 60
    held = 0
    while time.monotonic() < deadline:
        held = db.scalar("SELECT count(*) FROM checkpoints WHERE session_id = 'killed'") or 0
        if held >= 4:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    stopped_at = db.scalar("SELECT count(*) FROM checkpoints WHERE session_id = 'killed'")
    assert 4 <= stopped_at < STEPS + 2, "the kill must land mid-run"

    resumed = finish(worker(backend_url, "killed", "resume", 0.0))
    assert resumed == reference
    # The resumed run added to the killed run's history instead of starting over.
    assert db.scalar("SELECT count(*) FROM checkpoints WHERE session_id = 'killed'") == (
        db.scalar("SELECT count(*) FROM checkpoints WHERE session_id = 'uninterrupted'")
    )
