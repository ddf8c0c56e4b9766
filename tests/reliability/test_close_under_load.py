"""``close()`` while other threads are inside calls of the same store.

Found by closing a sync store while other threads wrote: the driver connection a call
was using was closed under it, and the process died (SIGSEGV in ``sqlite3``; on
PostgreSQL libpq's connection freed under a running statement, or ``select`` on a
closed socket: a bare ``OSError``). Now a call that is using a connection when the
store closes finishes with it and closes it itself; calls that start afterwards get
``StoreClosedError``. Each scenario runs in a child process, so a crash fails the
test instead of ending the suite.
"""

from __future__ import annotations

import json

from .conftest import run_child

TRIALS = 12

_CHILD = """
    import json, random, sys, threading, time
    from sqlalchemy import text
    from breakpilot_store import CheckpointStore
    from breakpilot_store.errors import BreakpilotStoreError, StoreClosedError

    url, trials = sys.argv[1], int(sys.argv[2])
    acknowledged, untyped, closed_errors = [], [], 0
    lock = threading.Lock()

    def mark(conn):
        conn.execute(text("UPDATE sessions SET base_at = base_at WHERE session_id = 's'"), {})

    for trial in range(trials):
        store = CheckpointStore(url)
        store.create("s", "first", {"trial": trial})
        stop = threading.Event()

        def call(kind):
            global closed_errors
            while not stop.is_set():
                try:
                    if kind == "create":
                        cp = store.create("s", "step", {"trial": trial, "text": "x" * 300})
                        with lock:
                            acknowledged.append(cp.id)
                    elif kind == "read":
                        store.get_latest("s")
                    else:
                        store.run(mark, write=True, hot=True, serial=True)
                except StoreClosedError:
                    with lock:
                        closed_errors += 1
                    return
                except BreakpilotStoreError:
                    pass  # typed (busy, say): allowed, and the loop goes on
                except BaseException as exc:
                    with lock:
                        untyped.append(f"{kind}: {type(exc).__name__}: {exc}")
                    return

        threads = [threading.Thread(target=call, args=(kind,))
                   for kind in ("create", "create", "read", "serial")]
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(0.005, 0.04))
        store.close()
        time.sleep(0.01)
        stop.set()
        for thread in threads:
            thread.join(60)
    print(json.dumps({"acknowledged": acknowledged, "untyped": untyped,
                      "closed": closed_errors}))
"""


def test_closing_a_store_while_other_threads_use_it(backend_url, raw) -> None:
    done = run_child(_CHILD, backend_url, str(TRIALS))
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["untyped"] == []
    assert found["closed"] > 0  # the threads were stopped by the close, as calls
    db = raw()
    seqs = [
        row[0]
        for row in db.query("SELECT seq FROM checkpoints WHERE session_id = 's' ORDER BY seq")
    ]
    # Every acknowledged create is there; nothing half-written: seqs gapless from 1.
    assert {f"s:{seq}" for seq in seqs} >= set(found["acknowledged"])
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= TRIALS + len(found["acknowledged"])
    if db.kind == "sqlite":
        assert db.query("PRAGMA integrity_check") == [("ok",)]
