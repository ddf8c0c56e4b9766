"""Workload 4: many writers, 4 processes x N creates, distinct sessions and one shared.

Each writer is a separate process, forked from a clean ``forkserver`` that has only
imported the contender modules (no connection is ever inherited; start-up is not
timed either way, this just keeps the quick run quick). It opens the database, warms
up in a session of its own, prepares its payloads, then waits at a barrier; the
figure is total successful creates / (last finish - first start). The baseline is
one process doing the same N creates. Afterwards the database is checked through a
separate raw connection: a create that returned but is missing counts as an error,
like one that raised. Durability is the default, ``"full"``; the store uses its
manager defaults (compression on).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue as queue_mod
import sqlite3
import time
from typing import Any

from benchmarks.contenders.base import Durability
from benchmarks.contenders.registry import load
from benchmarks.payload import name_for, payload_for
from benchmarks.workloads.common import Context, remove_db, rotate

NAME = "writers"
DURABILITY: Durability = "full"
WARMUP = 3
TIMEOUT_S = 600.0
PRELOAD = [
    "benchmarks.workloads.writers",
    "benchmarks.contenders.raw_sqlite",
    "benchmarks.contenders.langgraph_saver",
    "benchmarks.contenders.product",
]


def cases(procs: int) -> dict[str, list[str]]:
    """Case label -> the session each process writes to."""
    return {
        "1 writer": ["w0"],
        f"{procs} writers, distinct sessions": [f"w{i}" for i in range(procs)],
        f"{procs} writers, shared session": ["shared"] * procs,
    }


def _worker(  # runs in a child process
    key: str,
    path: str,
    session: str,
    index: int,
    n: int,
    barrier: Any,
    results: Any,
) -> None:
    try:
        contender, why = load(key)
        if contender is None:
            raise RuntimeError(why)
        backend = contender.open(path, DURABILITY)
        warm = backend.writer(f"warm-{index}")
        for step in range(1, WARMUP + 1):
            warm.create(name_for(index, step), payload_for(index, step))
        writer = backend.writer(session)
        items = [(name_for(index, s), payload_for(index, s)) for s in range(1, n + 1)]
        barrier.wait(timeout=TIMEOUT_S)
    except BaseException as exc:  # noqa: BLE001 - report to the parent, free the others
        barrier.abort()
        results.put((index, math.nan, math.nan, n, f"{type(exc).__name__}: {exc}"))
        return
    errors = 0
    first_error = ""
    t0 = time.perf_counter()
    for name, data in items:
        try:
            writer.create(name, data)
        except Exception as exc:  # noqa: BLE001 - counted, reported once
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
    t1 = time.perf_counter()
    backend.close()
    results.put((index, t0, t1, errors, first_error))


def _count_rows(key: str, path: str, sessions: list[str]) -> int | None:
    """Creates that the database shows for these sessions (None if not checkable)."""
    unique = sorted(set(sessions))
    marks = ",".join("?" * len(unique))
    if key == "b":
        sql = f"SELECT COUNT(*) FROM checkpoints WHERE thread_id IN ({marks})"  # noqa: S608
    else:  # the last seq never goes back, so retention does not hide lost creates
        sql = (
            "SELECT SUM(max(s.base_seq, coalesce((SELECT max(c.seq) FROM checkpoints c"
            " WHERE c.session_id = s.session_id), 0))) FROM sessions s"
            f" WHERE s.session_id IN ({marks})"  # noqa: S608
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute(sql, unique).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(row[0] or 0)


def _one(ctx: Context, key: str, path: str, sessions: list[str]) -> tuple[float, float, str]:
    """Run one case for one contender: (creates/s, errors, first error)."""
    n = ctx.config.writer_creates
    spawn = mp.get_context("forkserver")
    spawn.set_forkserver_preload(PRELOAD)  # only takes effect before the server starts
    barrier = spawn.Barrier(len(sessions))
    results = spawn.Queue()
    procs = [
        spawn.Process(target=_worker, args=(key, path, s, i, n, barrier, results))
        for i, s in enumerate(sessions)
    ]
    for proc in procs:
        proc.start()
    rows: list[tuple[int, float, float, int, str]] = []
    try:
        for _ in procs:
            rows.append(results.get(timeout=TIMEOUT_S))
    except queue_mod.Empty:
        pass
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    errors = sum(r[3] for r in rows) + n * (len(procs) - len(rows))
    first = next((r[4] for r in rows if r[4]), "")
    starts = [r[1] for r in rows if not math.isnan(r[1])]
    ends = [r[2] for r in rows if not math.isnan(r[2])]
    ok = n * len(procs) - errors
    found = _count_rows(key, path, sessions)
    if found is None:
        ctx.results.note(NAME, f"{key}: could not verify the rows afterwards")
    elif found < ok:
        errors += ok - found
        first = first or f"{ok - found} creates returned but are missing"
        ok = found
    if not starts or len(rows) < len(procs):
        return math.nan, float(errors), first or "a writer did not report"
    return ok / (max(ends) - min(starts)), float(errors), first


def run(ctx: Context) -> None:
    """All cases, durable contenders interleaved, a fresh database each time."""
    cfg = ctx.config
    for rep in range(cfg.reps):
        for case, sessions in cases(cfg.writer_procs).items():
            for contender in rotate(ctx.durable(), rep):
                path = ctx.db_path(f"writers-{contender.key}")
                try:
                    contender.open(path, DURABILITY).close()  # schema first, not raced
                    rate, errors, first = _one(ctx, contender.key, path, sessions)
                except Exception as exc:  # noqa: BLE001 - record and go on
                    rate, errors, first = math.nan, math.nan, f"{type(exc).__name__}: {exc}"
                finally:
                    remove_db(path)
                ctx.results.add(NAME, case, "creates/s", contender.key, rate, higher_is_better=True)
                ctx.results.add(NAME, case, "errors", contender.key, float(errors))
                if first:
                    ctx.results.note(NAME, f"{contender.key} {case} rep {rep + 1}: {first}")
                ctx.log(
                    f"  writers rep {rep + 1} {case:32} {contender.key:5} "
                    f"{rate:9.0f} creates/s  errors {errors:.0f}"
                )
    ctx.results.note(
        NAME,
        f"{cfg.writer_creates} creates per process at durability={DURABILITY!r}; "
        "throughput = successful creates / (last finish - first start).",
    )
