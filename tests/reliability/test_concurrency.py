"""Faults 2 and 3: many writers on one file, many openers of a new or out-of-date file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from breakpilot_store import CheckpointStore
from breakpilot_store.migrate import HEAD, KNOWN_REVISIONS, downgrade

from . import workers
from .conftest import counters, dump, integrity, raw_connect, tables

PROCS = 8
CREATES = 250
SAFETY = 120  # seconds: a bound on a hung child, not a speed assertion


def _run(target, argsets):  # noqa: ANN001, ANN202
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, results)) for args in argsets]
    for proc in procs:
        proc.start()
    start.set()
    out = [results.get(timeout=SAFETY) for _ in procs]
    for proc in procs:
        proc.join(SAFETY)
        assert proc.exitcode == 0
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["distinct-sessions", "one-session"])
def test_many_writers(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "writers.db"
    CheckpointStore(path).close()
    sessions = ["shared" if shared else f"agent-{i}" for i in range(PROCS)]
    out = _run(workers.write_many, [(str(path), sid, CREATES) for sid in sessions])
    errors = [error for _, _, errs in out for error in errs]
    assert errors == []
    ids = [cp_id for _, got, _ in out for cp_id in got]
    assert len(ids) == PROCS * CREATES and len(set(ids)) == len(ids)
    by_session: dict[str, list[int]] = {}
    for cp_id in ids:
        sid, _, seq = cp_id.rpartition(":")
        by_session.setdefault(sid, []).append(int(seq))
    for sid, seqs in by_session.items():
        # Gapless: every seq 1..n handed out exactly once.
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), sid
    for _, got, _ in out:  # each process saw its own seqs increase
        seqs = [int(cp_id.rpartition(":")[2]) for cp_id in got]
        assert seqs == sorted(seqs)
    sessions_rows, rows = dump(path)
    assert len(rows) == PROCS * CREATES
    assert {(r[0], r[1]) for r in rows} == {
        (cp_id.rpartition(":")[0], int(cp_id.rpartition(":")[2])) for cp_id in ids
    }
    for row in sessions_rows:  # nothing but creates: every row still at its base (0, 0)
        assert row[1:3] == (0, 0), row
    assert counters(path) == {sid: (len(seqs), len(seqs)) for sid, seqs in by_session.items()}
    assert integrity(path) == "ok"


def _at_base(path: Path) -> None:
    store = CheckpointStore(path)
    downgrade(store.engine, "base")
    store.close()
    assert tables(path) == {"alembic_version"}


@pytest.mark.parametrize("kind", ["brand-new", "at-base", "empty-file"])
def test_many_openers_one_upgrade(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "openers.db"
    if kind == "at-base":
        _at_base(path)
    elif kind == "empty-file":
        path.touch()
    out = _run(workers.open_once, [(str(path),)] * PROCS)
    assert [error for _, error in out if error] == []
    upgrades = [count for count, _ in out]
    # One process ran the migrations (each revision once); the others found them done.
    assert sorted(upgrades) == [0] * (PROCS - 1) + [len(KNOWN_REVISIONS)], upgrades
    conn = raw_connect(path)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    finally:
        conn.close()
    assert {"sessions", "checkpoints", "session_overview", "checkpoint_overview"} <= tables(path)
    assert sorted(r[1] for r in dump(path)[1]) == list(range(1, PROCS + 1))
    assert integrity(path) == "ok"
