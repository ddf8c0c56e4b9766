"""Run a ``benchmarks.probes`` child and read its JSON answer."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks.workloads.common import REPO_ROOT, subprocess_env


def run_probe(args: list[str], timeout_s: float = 1800.0) -> dict[str, Any]:
    """``python -m benchmarks.probes ARGS``; raises RuntimeError with stderr's tail."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.probes", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(" | ".join(tail) or f"exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
