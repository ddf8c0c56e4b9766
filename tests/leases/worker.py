"""A lease-holding agent for the multi-process lease tests (run as a script).

Usage: ``python worker.py URL SESSION OWNER``. It opens the store, prints ``ready``,
then runs one command per stdin line and answers with one line:

* ``acquire LEASE WAIT TAKEOVER`` -> ``won TOKEN`` or ``refused OWNER TOKEN``
* ``create NAME`` -> ``ok ID`` or ``error CLASSNAME``
* ``release`` -> ``released``
* ``exit`` -> exits 0
"""

from __future__ import annotations

import sys

from breakpilot_store import (
    BreakpilotStoreError,
    CheckpointManager,
    CheckpointStore,
    SessionLeasedError,
)


def main() -> None:
    url, session, owner = sys.argv[1], sys.argv[2], sys.argv[3]
    store = CheckpointStore(url)
    mgr: CheckpointManager | None = None
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "acquire":
            lease, wait, takeover = float(words[1]), float(words[2]), words[3] == "1"
            try:
                mgr = CheckpointManager(
                    session,
                    store=store,
                    compress_after=10**9,
                    max_checkpoints=10**9,
                    lease=lease,
                    lease_wait=wait,
                    takeover=takeover,
                    owner=owner,
                )
                print(f"won {mgr.lease_token}", flush=True)
            except SessionLeasedError as exc:
                print(f"refused {exc.owner} {exc.token}", flush=True)
        elif words[0] == "create":
            if mgr is None:
                print("error NoLease", flush=True)
                continue
            try:
                print(f"ok {mgr.create(words[1], {'by': owner}).id}", flush=True)
            except BreakpilotStoreError as exc:
                print(f"error {type(exc).__name__}", flush=True)
        elif words[0] == "release":
            if mgr is not None:
                mgr.close()
                mgr = None
            print("released", flush=True)
        elif words[0] == "exit":
            break
    store.close()


if __name__ == "__main__":
    main()
