"""Threads, processes, forks and asyncio tasks on one file at once, then every invariant.

For a bounded time (``STRESS_SECONDS``: a few seconds here, longer in the ``slow``
variant) these all write to one SQLite file, each recording what it was acknowledged:

* threads of this process (creates on their own session and a shared one, imports of a
  foreign document, reads, exports, a compress dry run, WAL checkpoints);
* asyncio tasks running the sync store through ``asyncio.to_thread``;
* spawned processes (fresh interpreters) creating on their own and the shared session;
* forked children of this process, made while the rest runs, each using the store it
  inherited and a new one.

No retention and no deletes run, so nothing acknowledged may be missing. Afterwards,
through a raw connection: every acknowledged id is present; every session's seqs are
unique and gapless from 1; ``session_overview`` agrees with the rows; origin ids are
unique per session; ``integrity_check`` is ok; ``breakpilot-store doctor`` finds no
problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from breakpilot_store import CheckpointStore
from breakpilot_store.cli.commands import cli

from .conftest import integrity, popen_child

SAFETY = 120

WORKER = """
import sys, time
from breakpilot_store import CheckpointStore
path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
with CheckpointStore(path, busy_timeout=60) as store:
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        session = "shared" if i % 3 == 0 else name
        print(store.create(session, "proc", {"i": i}).id, flush=True)
        time.sleep(0.003)
"""


def _foreign(k: int) -> list[dict]:
    return [
        {
            "id": f"upstream{k}:{i}",
            "name": "f",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"k": k, "i": i},
        }
        for i in range(1, 4)
    ]


def _stress(path: Path, seconds: float) -> None:
    store = CheckpointStore(path, busy_timeout=60)
    acked: list[str] = []
    imported: dict[str, set[str]] = {}
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def record(*ids: str) -> None:
        with lock:
            acked.extend(ids)

    def thread_worker(n: int) -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                session = "shared" if i % 4 == 0 else f"thread{n}"
                record(store.create(session, "t", {"n": n, "i": i}).id)
                if i % 10 == 0:
                    doc = _foreign(i % 5)
                    store.import_checkpoints(f"imp{n}", doc)
                    with lock:
                        imported.setdefault(f"imp{n}", set()).update(e["id"] for e in doc)
                if i % 15 == 0:
                    store.export_json("shared")
                    store.compress(f"thread{n}", compress_after=2, dry_run=True)
                    store.list_sessions()
                if i % 40 == 0:
                    store.wal_checkpoint("PASSIVE")
                store.get_latest(session)
                time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    async def task(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            session = "shared" if i % 2 else f"task{n}"
            cp = await asyncio.to_thread(store.create, session, "a", {"n": n, "i": i})
            record(cp.id)
            await asyncio.sleep(0.003)

    def event_loop() -> None:
        async def main() -> None:
            await asyncio.gather(*(task(n) for n in range(4)))

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=event_loop))
    procs = [popen_child(WORKER, str(path), f"proc{n}", str(seconds)) for n in range(2)]
    for thread in threads:
        thread.start()

    # Forks while everything above runs.
    deadline = time.monotonic() + seconds
    children = []
    fork_round = 0
    while time.monotonic() < deadline:
        time.sleep(seconds / 4)
        fork_round += 1
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(read_fd)
                ids = [store.create(f"fork{fork_round}", "c", {"i": i}).id for i in range(5)]
                ids.append(store.create("shared", "fork", {}).id)
                with CheckpointStore(path, busy_timeout=60) as fresh:
                    ids += [fresh.create(f"fork{fork_round}", "c2", {}).id for _ in range(3)]
                os.write(write_fd, json.dumps(ids).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd))
    stop.set()
    for thread in threads:
        thread.join(SAFETY)
    for pid, read_fd in children:
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        acked.extend(json.loads(b"".join(chunks)))
    for proc in procs:
        out, err = proc.communicate(timeout=SAFETY)
        assert proc.returncode == 0, err
        acked.extend(out.split())
    assert not errors, errors[:3]
    store.close()
    _check(path, acked, imported)


def _check(path: Path, acked: list[str], imported: dict[str, set[str]]) -> None:
    assert len(acked) == len(set(acked))  # no id acknowledged twice
    assert integrity(path) == "ok"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT session_id, seq, origin_id FROM checkpoints").fetchall()
        overview = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT session_id, checkpoints, last_seq FROM session_overview")
        }
    finally:
        conn.close()
    held = {f"{s}:{q}" for s, q, _ in rows}
    missing = [cid for cid in acked if cid not in held]
    assert not missing, missing[:10]
    by_session: dict[str, list[int]] = {}
    origins: dict[str, list[str]] = {}
    for session, seq, origin in rows:
        by_session.setdefault(session, []).append(seq)
        if origin is not None:
            origins.setdefault(session, []).append(origin)
    for session, seqs in by_session.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), session  # unique, gapless
        assert overview[session] == (len(seqs), len(seqs)), session
    for session, ids in imported.items():
        assert sorted(origins[session]) == sorted(ids)  # each foreign entry once
    assert {s for s in by_session} >= {"shared", "proc0", "proc1", "fork1"}
    result = CliRunner().invoke(cli, ["--db", str(path), "doctor"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.stdout


def test_stress_mixed_writers(db_path: Path) -> None:
    _stress(db_path, float(os.environ.get("STRESS_SECONDS", "3")))


@pytest.mark.slow
def test_stress_mixed_writers_long(db_path: Path) -> None:
    _stress(db_path, float(os.environ.get("STRESS_SECONDS_LONG", "40")))
