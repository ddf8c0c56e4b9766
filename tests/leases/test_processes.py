"""Leases across real processes on both backends: SIGSTOP, SIGKILL, and a race of eight.

Each agent is a separate Python process (``worker.py``) driven line by line over its
stdin; what they wrote is checked through a raw connection, as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from breakpilot_store import CheckpointStore
from breakpilot_store.core import leases

WORKER = str(Path(__file__).with_name("worker.py"))
REPO = Path(__file__).resolve().parents[2]
SESSION = "agent-7"


class Agent:
    """One worker process holding (or trying for) the session's lease."""

    def __init__(self, url: str, owner: str) -> None:
        self.owner = owner
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, url, SESSION, owner],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def ready(self) -> Agent:
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert line == "ready", self.proc.stderr.read()  # type: ignore[union-attr]
        return self

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def answer(self) -> list[str]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"{self.owner} died: {self.proc.stderr.read()}"  # type: ignore[union-attr]
        return line.split()

    def ask(self, command: str) -> list[str]:
        self.send(command)
        return self.answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()  # type: ignore[union-attr]


@pytest.fixture
def agents(backend_url: str) -> Iterator[list[Agent]]:
    CheckpointStore(backend_url).close()  # the schema, before the agents race to use it
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.close()


def start(agents: list[Agent], url: str, *owners: str) -> list[Agent]:
    new = [Agent(url, owner) for owner in owners]
    agents.extend(new)
    return [agent.ready() for agent in new]


def test_a_frozen_holder_is_fenced_after_a_takeover(backend_url: str, agents, raw) -> None:
    first, second = start(agents, backend_url, "first", "second")
    assert first.ask("acquire 1.0 0 0") == ["won", "1"]
    for _ in range(3):
        assert first.ask("create step")[0] == "ok"
    os.kill(first.proc.pid, signal.SIGSTOP)  # paused: no writes, no heartbeat
    try:
        # The second waits for the lease to expire (~1 s), then takes it and writes.
        waited = time.monotonic()
        assert second.ask("acquire 1.0 10 0") == ["won", "2"]
        waited = time.monotonic() - waited
        created = [second.ask("create step") for _ in range(3)]
        assert [c[0] for c in created] == ["ok"] * 3
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    # The zombie wakes up and tries to go on: refused, every time, nothing written.
    assert first.ask("create zombie") == ["error", "LeaseLostError"]
    assert first.ask("create zombie") == ["error", "LeaseLostError"]
    assert second.ask("create step")[0] == "ok"  # the new holder is unaffected
    db = raw()
    rows = db.query(
        "SELECT seq, CAST(data AS TEXT) FROM checkpoints WHERE session_id = ? ORDER BY seq",
        (SESSION,),
    )
    writers = [("first" if '"first"' in str(data) else "second") for _, data in rows]
    assert writers == ["first"] * 3 + ["second"] * 4
    assert db.query("SELECT count(*) FROM checkpoints WHERE name = 'zombie'") == [(0,)]
    takeover_seq = int(created[0][1].rpartition(":")[2])
    assert all(
        w == "second" for (seq, _), w in zip(rows, writers, strict=True) if seq >= takeover_seq
    )
    assert waited > 0.3  # it really waited for the expiry (the lease was live at first)
    assert db.query(
        "SELECT lease_owner, lease_token FROM session_overview WHERE session_id = ?", (SESSION,)
    ) == [("second", 2)]


def test_a_long_lease_is_fenced_by_the_write_itself(backend_url: str, agents, raw) -> None:
    """No heartbeat has noticed yet (a 60 s lease): the write's own check refuses it."""
    first, second = start(agents, backend_url, "first", "second")
    assert first.ask("acquire 60 0 0") == ["won", "1"]
    for _ in range(5):  # on SQLite, warm: the one-statement path
        assert first.ask("create step")[0] == "ok"
    assert second.ask("acquire 60 0 0") == ["refused", "first", "1"]
    assert second.ask("create step") == ["error", "NoLease"]
    assert second.ask("acquire 60 0 1") == ["won", "2"]  # takeover
    assert first.ask("create zombie") == ["error", "LeaseLostError"]
    assert raw().query("SELECT count(*) FROM checkpoints WHERE name = 'zombie'") == [(0,)]


def test_a_killed_holder_is_waited_for_or_taken_over(backend_url: str, agents, raw) -> None:
    first, waiter, supervisor = start(agents, backend_url, "first", "waiter", "supervisor")
    assert first.ask("acquire 2.0 0 0") == ["won", "1"]
    assert first.ask("create step")[0] == "ok"
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=30)
    killed = time.monotonic()
    assert waiter.ask("acquire 30 0 0") == ["refused", "first", "1"]  # still live
    assert waiter.ask("acquire 30 10 0") == ["won", "2"]  # waits for the expiry
    assert time.monotonic() - killed > 0.5
    assert waiter.ask("create step")[0] == "ok"
    # Killed in turn, holding a 30 s lease: a supervisor's takeover does not wait.
    waiter.proc.send_signal(signal.SIGKILL)
    waiter.proc.wait(timeout=30)
    assert supervisor.ask("acquire 30 0 0") == ["refused", "waiter", "2"]
    began = time.monotonic()
    assert supervisor.ask("acquire 30 0 1") == ["won", "3"]
    assert time.monotonic() - began < 10  # no waiting for the 30 s lease
    assert supervisor.ask("create step") == ["ok", f"{SESSION}:3"]
    assert raw().query(
        "SELECT lease_owner, lease_token, leased FROM session_overview WHERE session_id = ?",
        (SESSION,),
    ) in ([("supervisor", 3, 1)], [("supervisor", 3, True)])


ROUNDS = 3


def test_eight_processes_race_and_exactly_one_wins_each_round(
    backend_url: str, agents, raw
) -> None:
    racers = start(agents, backend_url, *(f"racer{i}" for i in range(8)))
    winners = []
    for round_ in range(ROUNDS):
        for racer in racers:  # all at once: each reads its line as soon as it is sent
            racer.send("acquire 30 0 0")
        answers = {racer.owner: racer.answer() for racer in racers}
        won = [owner for owner, answer in answers.items() if answer[0] == "won"]
        assert len(won) == 1, answers
        token = round_ + 1
        assert answers[won[0]] == ["won", str(token)]
        for owner, answer in answers.items():
            if owner != won[0]:
                assert answer == ["refused", won[0], str(token)], answers
        winner = next(r for r in racers if r.owner == won[0])
        assert winner.ask("create step") == ["ok", f"{SESSION}:{round_ + 1}"]
        assert winner.ask("release") == ["released"]
        winners.append(won[0])
    db = raw()
    assert db.query("SELECT owner, token FROM leases") == [(None, ROUNDS)]
    assert db.query("SELECT count(*) FROM checkpoints") == [(ROUNDS,)]


@pytest.mark.parametrize("hold", [0.0, 0.3], ids=["commit-at-once", "creates-queue"])
def test_a_takeover_racing_a_holders_creates_fences_every_later_one(
    backend_url: str, agents, raw, hold: float
) -> None:
    """A holder creates in a tight loop (PostgreSQL: the one-statement create) while a
    takeover commits; with ``hold`` the takeover keeps its locks a while, so the
    holder's next create waits for the session's row and must then see the new token.
    Nothing the old holder writes may land after the takeover."""
    (first,) = start(agents, backend_url, "first")
    assert first.ask("acquire 60 0 0") == ["won", "1"]
    thief = CheckpointStore(backend_url)  # opened first: the takeover then starts at once
    # Pipelined: the worker runs them back to back. The commands fit in the stdin pipe
    # (60 kB of 64), the answers do not fit in the stdout pipe: unread, the worker
    # stops after ~4,000 creates, so the last ones always come after the takeover.
    n = 5000
    first.proc.stdin.write("create step\n" * n)  # type: ignore[union-attr]
    first.proc.stdin.flush()  # type: ignore[union-attr]
    answers = [first.answer() for _ in range(20)]

    def take_over(conn: Any) -> tuple[Any, int]:
        won = leases.acquire(
            conn, SESSION, "thief", 60.0, datetime.now(timezone.utc), takeover=True
        )
        top = conn.execute(
            text("SELECT max(seq) FROM checkpoints WHERE session_id = :s"), {"s": SESSION}
        ).scalar()
        time.sleep(hold)  # locks held: the holder's next create waits for them
        return won, int(top)

    with thief:
        (token, _), top = thief.run(take_over, write=True)
    assert token == 2
    answers += [first.answer() for _ in range(n - 20)]
    kinds = [a[0] for a in answers]
    oks = kinds.index("error") if "error" in kinds else n
    assert oks < n, "the takeover landed after the holder's last create: nothing raced"
    assert kinds[:oks] == ["ok"] * oks  # no ok after the first refusal
    assert all(a == ["error", "LeaseLostError"] for a in answers[oks:])
    rows = raw().query("SELECT seq FROM checkpoints WHERE session_id = ? ORDER BY seq", (SESSION,))
    assert len(rows) == oks  # every refused create wrote nothing
    assert max(seq for (seq,) in rows) == top  # none landed after the takeover
