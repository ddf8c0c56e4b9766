"""``breakpilot-store list`` on a large session: time to the first row, whole listing, memory.

Run: ``python -m benchmarks.list_stream [N]`` (default 300,000 checkpoints of ~200 B).
Each command runs in a fresh process; its first stdout line is timed from the spawn,
its peak RSS read from ``wait4``. ``BASELINE`` (a directory holding another checkout,
e.g. the previous main) adds that code's ``list --limit 0 --json`` as the comparison the
issue asks for ("at least as fast as --json is now").
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from breakpilot_store import CheckpointStore

REPO = Path(__file__).resolve().parent.parent


def build(path: Path, n: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = ("plan", "tool_call", "tool_result", "step_done")
    entries = [
        {
            "id": f"big:{i}",
            "name": names[i % 4],
            "timestamp": (start + timedelta(milliseconds=i)).isoformat(),
            "data": {"step": i, "messages": [{"role": "tool", "text": "x" * 120}]},
            "metadata": {"model": "m-1"},
        }
        for i in range(1, n + 1)
    ]
    with CheckpointStore(path) as store:
        store.import_checkpoints("big", entries)


#: Runs the CLI after its imports, saying on stderr (CLOCK_MONOTONIC, shared by every
#: process) when the command itself started: the first row's latency without Python's
#: start-up, which a loaded 2-core machine stretches to seconds.
DRIVER = (
    "import sys, time\n"
    "from breakpilot_store.cli.commands import main\n"
    "sys.stderr.write(f'{time.monotonic()}\\n'); sys.stderr.flush()\n"
    "main(sys.argv[1:])\n"
)


def measure(argv: list[str], pythonpath: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    env.pop("BREAKPILOT_STORE_URL", None)
    if argv[1:3] == ["-m", "breakpilot_store"]:
        argv = [argv[0], "-c", DRIVER, *argv[3:]]
    started = time.perf_counter()
    # From a neutral directory: `python -m` puts the working directory first on
    # sys.path, which would shadow PYTHONPATH's checkout.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir()
    )
    assert proc.stdout is not None and proc.stderr is not None
    first_line = proc.stdout.readline()
    first = time.perf_counter() - started
    first_at = time.monotonic()
    try:
        command_started = float(proc.stderr.readline())
    except ValueError:
        command_started = float("nan")
    size = len(first_line)
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):
        size += len(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - started
    proc.stderr.read()
    return {
        "first_line_s": round(first, 3),
        "first_line_after_imports_s": round(first_at - command_started, 3),
        "total_s": round(total, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stdout_mib": round(size / 2**20, 1),
        "status": os.waitstatus_to_exitcode(status),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        # Built in a child: a child's peak RSS starts at its parent's (fork copies it).
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from benchmarks.list_stream import build; from pathlib "
                f"import Path; build(Path({str(db)!r}), {n})",
            ],
            check=True,
            cwd=REPO,
        )
        reference = measure(
            [sys.executable, "-c", "import breakpilot_store.cli.commands;print('imported')"],
            str(REPO),
        )
        cli = [sys.executable, "-m", "breakpilot_store", "--db", str(db)]
        runs = {
            "list --limit 0": (cli + ["list", "big", "--limit", "0"], str(REPO)),
            "list --limit 0 --json": (cli + ["--json", "list", "big", "--limit", "0"], str(REPO)),
            "list (default --limit 50)": (cli + ["list", "big"], str(REPO)),
        }
        baseline = os.environ.get("BASELINE")
        if baseline:
            runs["baseline: list --limit 0"] = (
                cli + ["list", "big", "--limit", "0"],
                baseline,
            )
            runs["baseline: list --limit 0 --json"] = (
                cli + ["--json", "list", "big", "--limit", "0"],
                baseline,
            )
        report: dict = {"checkpoints": n, "python + imports only": reference}
        for label, (argv, path) in runs.items():
            report[label] = measure(argv, path)
            print(label, report[label], flush=True)
        out = io.StringIO()
        json.dump(report, out, indent=2)
        print(out.getvalue())


if __name__ == "__main__":
    main()
