"""A child process for the multi-process tests (run as a script, not imported by pytest).

Usage: ``python worker.py URL SESSION COUNT [SCHEMA [pgbouncer]]``. It imports the store, prints
``ready``, waits for a line on stdin (so that all children start together), then opens
the store (racing the others on a fresh schema if it has none yet) and writes COUNT
checkpoints to SESSION, printing each id. Any error goes to stderr with exit code 1.
"""

from __future__ import annotations

import sys

from breakpilot_store import CheckpointManager, CheckpointStore


def main() -> None:
    url, session, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    options: dict[str, object] = {"schema": sys.argv[4]} if len(sys.argv) > 4 else {}
    if sys.argv[5:] == ["pgbouncer"]:
        options["pgbouncer"] = True
    print("ready", flush=True)
    sys.stdin.readline()
    with CheckpointStore(url, **options) as store:
        mgr = CheckpointManager(session, store=store, compress_after=10**9, max_checkpoints=10**9)
        ids = [mgr.create("step", {"step": i, "pad": "x" * 64}).id for i in range(count)]
    sys.stdout.write("\n".join(ids) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
