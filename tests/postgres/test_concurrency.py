"""Many processes against one PostgreSQL database: writers and first openers racing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from breakpilot_store.migrate import HEAD

WORKER = str(Path(__file__).with_name("worker.py"))
REPO = Path(__file__).resolve().parents[2]
#: Safety bound for one child (never an assertion on speed).
CHILD_TIMEOUT = 120
PROCESSES = 8
PER_PROCESS = 250


def run_together(jobs: list[list[str]]) -> list[list[str]]:
    """Start one worker per argument list, release them at once, return their ids.

    Every worker must exit 0 with nothing on stderr.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for args in jobs
    ]
    try:
        for proc in procs:  # all imported and waiting: the race starts together
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
            assert proc.returncode == 0, err
            assert err == ""
            results.append(out.split())
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def seqs(ids: list[str]) -> list[int]:
    return [int(i.rsplit(":", 1)[1]) for i in ids]


def test_eight_writers_on_one_session(pg_url, pg_raw) -> None:
    results = run_together([[pg_url, "shared", str(PER_PROCESS)]] * PROCESSES)
    total = PROCESSES * PER_PROCESS
    ids = [i for out in results for i in out]
    assert len(ids) == total and len(set(ids)) == total
    assert sorted(seqs(ids)) == list(range(1, total + 1))  # unique and gapless
    for out in results:  # each process saw its own ids in increasing order
        assert seqs(out) == sorted(seqs(out))
    assert pg_raw("SELECT count(*), min(seq), max(seq) FROM checkpoints") == [(total, 1, total)]
    assert pg_raw("SELECT session_id, last_seq, checkpoints FROM session_overview") == [
        ("shared", total, total)
    ]
    # Every row holds what its writer wrote.
    assert pg_raw("SELECT count(DISTINCT (data ->> 'step')) FROM checkpoints") == [(PER_PROCESS,)]


def test_eight_writers_on_distinct_sessions(pg_url, pg_raw) -> None:
    jobs = [[pg_url, f"agent-{n}", str(PER_PROCESS)] for n in range(PROCESSES)]
    results = run_together(jobs)
    for n, out in enumerate(results):
        assert out == [f"agent-{n}:{s}" for s in range(1, PER_PROCESS + 1)]
    assert pg_raw(
        "SELECT session_id, last_seq, checkpoints FROM session_overview ORDER BY session_id"
    ) == [(f"agent-{n}", PER_PROCESS, PER_PROCESS) for n in range(PROCESSES)]
    assert pg_raw(
        "SELECT session_id, count(*), max(seq) FROM checkpoints "
        "GROUP BY session_id ORDER BY session_id"
    ) == [(f"agent-{n}", PER_PROCESS, PER_PROCESS) for n in range(PROCESSES)]


def test_first_open_races_on_an_empty_schema(pg_url, pg_raw) -> None:
    # The schema exists but is empty: all eight create the tables at once.
    results = run_together([[pg_url, "s", "1"]] * PROCESSES)
    assert sorted(seqs([out[0] for out in results])) == list(range(1, PROCESSES + 1))
    assert pg_raw("SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert pg_raw("SELECT count(*) FROM checkpoints") == [(PROCESSES,)]


def test_first_open_races_on_a_missing_schema(pg_base_url, fresh_schema_name, pg_admin) -> None:
    # schema=: the schema itself does not exist yet; the lock holder creates it.
    jobs = [[pg_base_url, f"agent-{n}", "1", fresh_schema_name] for n in range(PROCESSES)]
    results = run_together(jobs)
    assert [out for out in results] == [[f"agent-{n}:1"] for n in range(PROCESSES)]
    rows = pg_admin.execute(
        f"SELECT version_num FROM {fresh_schema_name}.alembic_version"
    ).fetchall()
    assert rows == [(HEAD,)]
    count = pg_admin.execute(f"SELECT count(*) FROM {fresh_schema_name}.checkpoints").fetchone()
    assert count == (PROCESSES,)
