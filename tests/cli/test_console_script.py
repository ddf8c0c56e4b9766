"""End to end: the installed ``breakpilot-store`` script and ``python -m breakpilot_store``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import raw_rows

SCRIPT = Path(sys.executable).parent / "breakpilot-store"


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("BREAKPILOT_STORE_URL", "COLUMNS")}
    env.pop("FORCE_COLOR", None)
    return env


def _run(*args, cwd):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )


def test_installed_script_runs_the_demo_and_reads_it_back(tmp_path):
    assert SCRIPT.exists(), f"console script missing next to {sys.executable}"
    demo = _run(
        SCRIPT, "demo", "--steps", "3", "--kill-after", "1", "--step-delay", "0", cwd=tmp_path
    )
    assert demo.returncode == 0, demo.stderr
    assert "SIGKILL" in demo.stdout
    assert "\x1b[" not in demo.stdout + demo.stderr  # piped: no colour codes
    path = tmp_path / "breakpilot-demo.db"
    assert raw_rows(path, "SELECT count(*) FROM checkpoints") == [(6,)]

    listed = _run(SCRIPT, "--db", path, "--json", "sessions", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [s["session_id"] for s in json.loads(listed.stdout)] == ["demo-1"]

    missing = _run(SCRIPT, "--db", tmp_path / "missing.db", "sessions", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: no database at")
    assert len(missing.stderr.strip().splitlines()) == 1
    usage = _run(SCRIPT, "prune", "--idle-for", "soon", cwd=tmp_path)
    assert usage.returncode == 2


def test_python_dash_m_is_the_same_cli(tmp_path):
    result = _run(sys.executable, "-m", "breakpilot_store", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: breakpilot-store" in result.stdout
    assert "sessions" in result.stdout
