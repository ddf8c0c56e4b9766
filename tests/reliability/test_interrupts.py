"""Ctrl-C mid-call: a ``KeyboardInterrupt`` at a random moment of every kind of write.

An agent in a notebook or a REPL is interrupted and goes on with the same store (the
interpreter catches the interrupt); a signal handler that raises does the same in a
service. Found by the campaign (round 4): an interrupt that landed just after a
transaction's ``BEGIN IMMEDIATE`` (hot path), or inside a statement (SQLAlchemy path),
left the file's write lock held: every later write of that thread failed with
``DatabaseError`` "cannot start a transaction within a transaction", and every other
process's writes waited ``busy_timeout`` and failed, until the process ended (or, on the
SQLAlchemy path, until the cyclic garbage collector happened to run). An interrupt
between the one-statement create's autocommit ``INSERT`` and its counter bookkeeping
made a later create reuse the seq (``UNIQUE constraint failed``).

A child process interrupts itself with ``setitimer`` (50 us - 3 ms into each call) some
hundreds of times during creates (one-statement and full, retention due or not) and
reads; after every call it checks, through a separate raw ``sqlite3`` connection with
no busy wait, that nobody holds the write lock. Then it writes on. (Interrupts inside
SQLAlchemy's and ``threading``'s own Python code, on the other writes, are not all
survivable yet: see the README row.)
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from .conftest import CHILD_TIMEOUT, PYTHON, raw_connect

CHILD = textwrap.dedent(
    """
    import json, random, signal, sqlite3, sys, time
    from breakpilot_store import BreakpilotStoreError, CheckpointManager, CheckpointStore

    path = sys.argv[1]
    store = CheckpointStore(path, busy_timeout=1.0)
    manager = CheckpointManager("ki", store=store, compress_after=None, max_checkpoints=None)
    armed = [False]

    def interrupt(signum, frame):
        if armed[0]:  # one interrupt per call, never in the bookkeeping below
            armed[0] = False
            raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    random.seed(4)
    calls = [
        lambda: acked.append(manager.create("n", {"x": "y" * random.choice([10, 5000])}).seq),
        lambda: acked.append(manager.create("n", {})),
        lambda: manager.get_latest(),
        lambda: store.create("other", "n", {}, compress_after=30, max_checkpoints=40),
        lambda: store.create("other", "n", {}),
    ]
    acked, interrupted, errors, locked = [], 0, [], 0
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        call = random.choice(calls)
        outcome = None
        try:
            armed[0] = True
            signal.setitimer(signal.ITIMER_REAL, random.uniform(0.00005, 0.003))
            call()
        except BaseException as exc:
            outcome = exc
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(outcome, KeyboardInterrupt):
            interrupted += 1
        elif outcome is not None:
            errors.append(f"{type(outcome).__name__}: {outcome}"[:300])
        try:
            probe.execute("BEGIN IMMEDIATE")  # no wait: is the write lock free now?
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            locked += 1
    acked = [seq for seq in acked if isinstance(seq, int)]
    after = []
    for _ in range(5):
        try:
            after.append(manager.create("after", {}).seq)
        except BaseException as exc:
            errors.append(f"after: {type(exc).__name__}: {exc}"[:300])
    print(json.dumps({"acked": acked + after, "interrupted": interrupted,
                      "errors": errors, "locked": locked, "after": after}))
    """
)


def test_interrupts_leave_no_lock_and_no_reused_seq(tmp_path: Path) -> None:
    path = tmp_path / "ki.db"
    done = subprocess.run(
        [PYTHON, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["locked"] == 0, report["errors"][:5]
    assert report["errors"] == []
    assert report["interrupted"] > 100  # the campaign did interrupt calls
    assert len(report["after"]) == 5
    conn = raw_connect(path)
    try:
        held = [s for (s,) in conn.execute("SELECT seq FROM checkpoints WHERE session_id = 'ki'")]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    # Every acknowledged create is there (interrupted ones may or may not be: never
    # acknowledged), each seq once, and the numbering has no gap (nothing deletes here).
    assert set(report["acked"]) <= set(held)
    assert sorted(held) == list(range(1, len(held) + 1))


def test_a_create_inside_a_hot_run_still_joins_its_transaction(tmp_path: Path) -> None:
    # The healing of a transaction an interrupt left open must not take a running one
    # for it: a create called from inside `run(op, write=True, hot=True)` on the same
    # thread joins the outer transaction (one-statement path), as it did before; the
    # first cut of the fix rolled the outer one back and committed the create alone.
    from sqlalchemy import text

    from breakpilot_store import CheckpointStore

    path = tmp_path / "reentrant.db"
    with CheckpointStore(path) as store:
        store.create("a", "n", {})
        store.create("a", "n", {})  # this thread's connection now knows the counter

        def op(conn: object) -> str:
            conn.execute(text("DELETE FROM checkpoints WHERE session_id = 'a' AND seq = 1"), {})
            return store.create("a", "inner", {}).id

        assert store.run(op, write=True, hot=True) == "a:3"
        assert store.create("a", "after", {}).id == "a:4"
    conn = raw_connect(path)
    try:
        rows = conn.execute("SELECT seq FROM checkpoints ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert rows == [(2,), (3,), (4,)]  # the outer DELETE and the inner create, together
