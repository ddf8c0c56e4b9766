"""A child for the import-versus-delete race (run as a script, not imported by pytest).

Usage: ``python race_worker.py URL ROLE SECONDS``. ROLE is ``import``, ``delete``,
``prune`` or ``create``. It prints ``ready``, waits for a line on stdin, then repeats
its call on session ``s`` for SECONDS. It prints one JSON line: the calls made, the
typed errors by class name, and any untyped error in full (the finding).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import timedelta

from breakpilot_store import BreakpilotStoreError, CheckpointStore

ENTRIES = [
    {"id": f"src:{i}", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {"i": i}}
    for i in range(1, 4)
]


def main() -> None:
    url, role, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()
    calls, typed, untyped, messages = 0, {}, [], []
    with CheckpointStore(url, busy_timeout=20) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            calls += 1
            try:
                if role == "import":
                    store.import_checkpoints("s", ENTRIES)
                elif role == "create":
                    store.create("s", "c", {"n": calls})
                elif role == "delete":
                    store.delete_session("s")
                else:
                    store.prune_sessions(timedelta(microseconds=1), prefix="s")
            except BreakpilotStoreError as exc:
                typed[type(exc).__name__] = typed.get(type(exc).__name__, 0) + 1
                messages.append(f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 - reported to the test
                untyped.append(traceback.format_exc())
    result = {"calls": calls, "typed": typed, "untyped": untyped[:3], "messages": messages[:3]}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
