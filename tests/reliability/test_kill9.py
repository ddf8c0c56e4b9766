"""Fault 1: a writer SIGKILLed at random moments loses nothing it acknowledged."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

from tests.operator_view import COUNTERS_SQL, derive

from .conftest import CHILD_TIMEOUT, integrity, popen_child, raw_connect, run_child

SESSION = "agent:kill-9"
COMPRESS_AFTER = 10
MAX_CHECKPOINTS = 30
KEEP_RECENT = 20
NAMES = 13  # more names than the cap leaves room for, so the cap fires as well
KILLS = 55

# The child: continue the session, print each seq (flushed) right after create returns.
WRITER = """
import random, sys
from breakpilot_store import CheckpointManager, CheckpointStore

path, limit, session = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cap, compress, names = (int(v) for v in sys.argv[4:7])
store = CheckpointStore(path)
manager = CheckpointManager(session, max_checkpoints=cap, compress_after=compress, store=store)
info = store.session_info(session)
seq = info.last_seq if info else 0
print("open", flush=True)
for _ in range(limit):
    seq += 1
    blob = "x" * random.randrange(0, 64 * 1024)  # vary the transaction's size
    cp = manager.create(f"step{seq % names}", {"seq": seq, "blob": blob}, {"pid": 1})
    if cp.seq != seq:
        print(f"MISMATCH {cp.id} expected {seq}", flush=True)
        sys.exit(3)
    print(cp.seq, flush=True)
store.close()
"""
ARGS = (SESSION, str(MAX_CHECKPOINTS), str(COMPRESS_AFTER), str(NAMES))


def name_for(seq: int) -> str:
    return f"step{seq % NAMES}"


def retained(last_seq: int) -> list[int]:
    """Re-derive, from the documented rule alone, which seqs 1..last_seq a session keeps."""
    held: list[int] = []
    for seq in range(1, last_seq + 1):
        held.append(seq)
        if len(held) > COMPRESS_AFTER and len(held) > KEEP_RECENT:
            first, edge = held[0], held[-KEEP_RECENT]
            latest: dict[str, int] = {}
            for s in held:
                if first < s < edge:
                    latest[name_for(s)] = s
            keep = {first, *held[-KEEP_RECENT:], *latest.values()}
            held = [s for s in held if s in keep]
        if len(held) > MAX_CHECKPOINTS:
            excess = len(held) - MAX_CHECKPOINTS
            order = sorted(held[:-1], key=lambda s: (s == held[0], s))
            gone = set(order[:excess])
            held = [s for s in held if s not in gone]
    return held


def state(path: Path) -> tuple[int, list[tuple[int, str, dict]]]:
    conn = raw_connect(path, readonly=False)
    try:
        counter = derive(conn.execute(COUNTERS_SQL).fetchall()).get(SESSION)
        rows = conn.execute(
            "SELECT seq, name, data FROM checkpoints WHERE session_id = ? ORDER BY seq",
            (SESSION,),
        ).fetchall()
    finally:
        conn.close()
    if counter is None:
        return 0, []
    assert counter[1] == len(rows), f"counter says {counter[1]} held but {len(rows)} rows"
    return counter[0], [(seq, name, json.loads(data)) for seq, name, data in rows]


def kill_once(path: Path, rng: random.Random) -> tuple[list[int], str]:
    """Start a writer, SIGKILL it at a random moment, return the seqs it acknowledged."""
    proc = popen_child(WRITER, str(path), "100000", *ARGS)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    if rng.random() < 0.15:
        # Sometimes while it starts up or opens the store.
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        deadline = time.monotonic() + CHILD_TIMEOUT  # safety bound only
        while not lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.12))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=CHILD_TIMEOUT)
    reader.join(timeout=CHILD_TIMEOUT)
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"writer ended on its own: {stderr}"
    assert not any(line.startswith("MISMATCH") for line in lines), lines
    acked = [int(line) for line in lines if line.endswith("\n") and line.strip().isdigit()]
    return acked, stderr


def test_kill9_loop_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "kill9.db"
    rng = random.Random(20261124)
    every_acked: list[int] = []
    last_seq_before = 0
    kills_mid_writing = 0
    for round_ in range(KILLS):
        acked, _ = kill_once(path, rng)
        if acked:
            kills_mid_writing += 1
            # Seqs are never reused: a new process continues above everything acknowledged.
            assert not every_acked or acked[0] > max(every_acked), (round_, acked[:3])
            assert acked == list(range(acked[0], acked[0] + len(acked)))
        every_acked.extend(acked)
        if not path.exists():
            continue
        assert integrity(path) == "ok", f"round {round_}"
        last_seq, rows = state(path)
        # At most one create committed after the last acknowledgement (killed before print).
        top_acked = max(acked) if acked else last_seq_before
        assert top_acked <= last_seq <= top_acked + 1, (round_, top_acked, last_seq)
        held = [seq for seq, _, _ in rows]
        # Exactly what the retention rule keeps of 1..last_seq: so every acknowledged id
        # is present unless the rule removed it, and the latest ones always are.
        assert held == retained(last_seq), (round_, held, retained(last_seq))
        for seq, name, data in rows:
            assert name == name_for(seq) and data["seq"] == seq
        if every_acked:
            assert max(every_acked) in held
        last_seq_before = last_seq
    assert kills_mid_writing >= KILLS // 2, "too few kills landed while writing"

    # The next process opens the file and continues the numbering.
    done = run_child(WRITER, str(path), "5", *ARGS)
    assert done.returncode == 0, done.stderr
    acked = [int(line) for line in done.stdout.split() if line.isdigit()]
    assert acked and acked[0] > max(every_acked)
    assert acked[0] == last_seq_before + 1
    assert integrity(path) == "ok"
    assert [seq for seq, _, _ in state(path)[1]] == retained(acked[-1])
