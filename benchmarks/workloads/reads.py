"""Workload 2: point reads (``get_latest()`` and ``get(id)``) of random sessions.

Each durable contender gets one database of ``read_sessions`` x ``read_per_session``
checkpoints, filled once per run through its own write path, then closed and reopened
at the default durability. Every repetition reads the same random plan from every
contender (interleaved). (c) holds only ``seed_read_sessions`` sessions (RAM; its
cost per read does not depend on the session count) and maps the plan onto them.

Each durable database is read through once before its turn in every repetition, so
the reads are served from the OS page cache. Without this the figures measured the
disk: on this VM the page cache kept only part of the 1.4 GB files, whichever
contender's pages happened to stay resident (``fincore`` showed 0.4-0.7 GB of each),
and ``get(id)``'s p50 swung between 40 and 140 µs for the same code.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks.contenders import Backend, Contender
from benchmarks.workloads.common import Context, add_failure, add_latency, rotate, warm_file

NAME = "reads"


def session_id(index: int) -> str:
    """Read-database session ids (with a ``:`` inside, as ids may have)."""
    return f"agent:{index:05d}"


def _timed(fn: Callable[[], Any]) -> tuple[int, bool]:
    t0 = time.perf_counter_ns()
    found = fn() is not None
    return time.perf_counter_ns() - t0, found


def _build(ctx: Context, contender: Contender) -> tuple[Backend, str]:
    cfg = ctx.config
    n_sessions = cfg.read_sessions if contender.durable else cfg.seed_read_sessions
    sessions = [(i, session_id(i)) for i in range(n_sessions)]
    path = ctx.db_path(f"reads-{contender.key}")
    t0 = time.perf_counter()
    backend = contender.open(path, "normal")
    try:
        backend.fill(sessions, cfg.read_per_session)
    finally:
        if contender.durable:
            backend.close()
    if contender.durable:
        backend = contender.open(path, "full")
    ctx.log(
        f"  reads: built {contender.key} ({n_sessions} x {cfg.read_per_session}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    for _, sid in sessions:  # touch every session once (managers, statement caches)
        backend.get_latest(sid)
    return backend, path


def run(ctx: Context) -> None:
    """Build the read databases, then time both read kinds per repetition."""
    cfg = ctx.config
    backends: dict[str, Backend] = {}
    paths: dict[str, str] = {}
    for contender in ctx.contenders:
        try:
            backends[contender.key], path = _build(ctx, contender)
            if contender.durable:
                paths[contender.key] = path
        except Exception as exc:  # noqa: BLE001 - record and go on
            for case in ("get_latest", "get"):
                add_failure(ctx, NAME, case, contender.key, exc)
    try:
        for rep in range(cfg.reps):
            rng = random.Random(6000 + rep)
            latest_plan = [rng.randrange(cfg.read_sessions) for _ in range(cfg.read_ops)]
            get_plan = [
                (rng.randrange(cfg.read_sessions), rng.randint(1, cfg.read_per_session))
                for _ in range(cfg.read_ops)
            ]
            for contender in rotate(ctx.contenders, rep):
                backend = backends.get(contender.key)
                if backend is None:
                    continue
                width = cfg.read_sessions if contender.durable else cfg.seed_read_sessions
                if contender.key in paths:
                    warm_file(paths[contender.key])
                _one_rep(ctx, rep, contender.key, backend, width, latest_plan, get_plan)
    finally:
        for backend in backends.values():
            backend.close()
    ctx.results.note(
        NAME,
        f"{cfg.read_sessions} sessions x {cfg.read_per_session} checkpoints; "
        f"{cfg.read_ops} reads of each kind per repetition, random sessions "
        "(and random seq for get); every read fully decodes the checkpoint.",
    )


def _one_rep(
    ctx: Context,
    rep: int,
    key: str,
    backend: Backend,
    width: int,
    latest_plan: list[int],
    get_plan: list[tuple[int, int]],
) -> None:
    cases: dict[str, list[Callable[[], Any]]] = {
        "get_latest": [partial(backend.get_latest, session_id(i % width)) for i in latest_plan],
        "get": [partial(backend.get, session_id(i % width), seq) for i, seq in get_plan],
    }
    for case, calls in cases.items():
        try:
            for call in calls[:100]:  # warm the statement and page caches
                call()
            gc.collect()
            timed = [_timed(call) for call in calls]
        except Exception as exc:  # noqa: BLE001 - record and go on
            add_failure(ctx, NAME, case, key, exc)
            continue
        misses = sum(1 for _, found in timed if not found)
        if misses:
            ctx.results.note(NAME, f"{key} {case}: {misses} reads found nothing")
        s = add_latency(ctx, NAME, case, key, [ns for ns, _ in timed])
        ctx.log(
            f"  reads rep {rep + 1} {case:10} {key:5} "
            f"p50 {s['p50_us']:8.1f} µs  p99 {s['p99_us']:8.1f} µs"
        )
