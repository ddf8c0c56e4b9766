"""Workload 8: PostgreSQL: creates at ~1 KB and ~100 KB, point reads, 8 writer processes, import.

Lanes (``benchmarks/contenders/postgres.py``): the store, (a) raw psycopg doing the
same transaction by hand, (b) LangGraph's ``PostgresSaver``, each in a schema of its
own on one server, at ``synchronous_commit=on``. Creates and reads are interleaved in
blocks of ``BLOCK`` (the lane order rotating), so a burst of load on the shared
machine hits every lane alike. Writers run in separate processes (forkserver), 8 on
distinct sessions and 8 on one shared session; afterwards the store's ids are checked
through a separate connection: unique, and gapless (seq 1..n, retention off). Skipped
with a note when no server is configured (``BREAKPILOT_BENCH_POSTGRES_URL`` or
``BREAKPILOT_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import queue as queue_mod
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.chat_state import chat_state
from benchmarks.payload import name_for, payload_for
from benchmarks.workloads.common import Context, add_latency, rotate

NAME = "postgres"
BLOCK = 50
PROCS = 8
TIMEOUT_S = 600.0


def _sizes(ctx: Context) -> dict[str, int]:
    quick = ctx.config.quick
    return {
        "creates": 200 if quick else 1_000,
        "reads": 300 if quick else 2_000,
        "read_fill": 100 if quick else 300,
        "writer_creates": 50 if quick else 300,
        "import_n": 10_000 if quick else 100_000,
    }


def _payloads(case: str) -> Any:
    if case == "create 100 KB":
        return lambda step: chat_state(step, 100_000)
    return lambda step: payload_for(0, step)


def run(ctx: Context) -> None:
    """Every case of the workload (see the module docstring)."""
    from benchmarks.contenders import postgres as pg

    url = pg.server_url()
    if url is None:
        ctx.results.note(NAME, "skipped: no PostgreSQL server configured")
        return
    if pg.SAVER_ERROR is not None:
        ctx.results.note(
            NAME, f"(b) unavailable ({pg.SAVER_ERROR}): pip install langgraph-checkpoint-postgres"
        )
    sizes = _sizes(ctx)
    for rep in range(ctx.config.reps):
        for case in rotate(["create 1 KB", "create 100 KB"], rep):
            _creates(ctx, url, rep, case, sizes["creates"])
        _reads(ctx, url, rep, sizes)
        _writers(ctx, url, rep, sizes["writer_creates"])
        _import(ctx, url, rep, sizes["import_n"])
    ctx.results.note(
        NAME,
        f"{sizes['creates']} timed creates per lane and size, {sizes['reads']} reads per "
        f"kind, {PROCS} writer processes x {sizes['writer_creates']} creates, an import "
        f"of {sizes['import_n']} checkpoints; the store with the manager's defaults "
        "(compression on) for creates and reads, retention off for writers (so the ids "
        "can be checked gapless). Server: synchronous_commit=on.",
    )


def _lanes(url: str, retention: bool = True) -> tuple[dict[str, Any], list[str]]:
    from benchmarks.contenders import postgres as pg

    lanes: dict[str, Any] = {}
    schemas: list[str] = []
    for key in ("store", "a", "b"):
        if key == "b" and pg.SAVER_ERROR is not None:
            continue
        schema = pg.new_schema(url, key)
        schemas.append(schema)
        if key == "store":
            lanes[key] = pg.StoreLane(url, schema, retention)
        elif key == "a":
            lanes[key] = pg.RawLane(url, schema)
        else:
            lanes[key] = pg.SaverLane(url, schema)
    return lanes, schemas


def _close(url: str, lanes: dict[str, Any], schemas: list[str]) -> None:
    from benchmarks.contenders import postgres as pg

    for lane in lanes.values():
        lane.close()
    for schema in schemas:
        pg.drop_schema(url, schema)


def _creates(ctx: Context, url: str, rep: int, case: str, n: int) -> None:
    make = _payloads(case)
    lanes, schemas = _lanes(url)
    try:
        samples: dict[str, list[int]] = {key: [] for key in lanes}
        for lane in lanes.values():  # warm-up: connections, statement caches
            for step in range(1, 21):
                lane.create("warm", name_for(0, step), make(step))
        for number, start in enumerate(range(0, n, BLOCK)):
            items = [(name_for(0, s), make(s)) for s in range(start + 1, start + BLOCK + 1)]
            for key in rotate(list(lanes), rep + number):
                create = lanes[key].create
                append = samples[key].append
                for name, data in items:
                    t0 = time.perf_counter_ns()
                    create("bench", name, data)
                    append(time.perf_counter_ns() - t0)
        for key, values in samples.items():
            s = add_latency(ctx, NAME, case, key, values)
            ctx.log(f"  pg rep {rep + 1} {case:14} {key:5} p50 {s['p50_us']:8.1f} µs")
    finally:
        _close(url, lanes, schemas)


def _reads(ctx: Context, url: str, rep: int, sizes: dict[str, int]) -> None:
    lanes, schemas = _lanes(url, retention=False)
    try:
        sessions = [f"agent:{i}" for i in range(4)]
        fill = sizes["read_fill"]
        for lane in lanes.values():
            for session in sessions:
                for step in range(1, fill + 1):
                    lane.create(session, name_for(1, step), payload_for(1, step))
        plan = [(sessions[i % len(sessions)], 1 + (i * 7919) % fill) for i in range(sizes["reads"])]
        for case in ("get_latest", "get"):
            samples: dict[str, list[int]] = {key: [] for key in lanes}
            for number, start in enumerate(range(0, len(plan), BLOCK)):
                for key in rotate(list(lanes), rep + number):
                    lane = lanes[key]
                    append = samples[key].append
                    for session, seq in plan[start : start + BLOCK]:
                        t0 = time.perf_counter_ns()
                        found = (
                            lane.get_latest(session)
                            if case == "get_latest"
                            else lane.get(session, seq)
                        )
                        append(time.perf_counter_ns() - t0)
                        if found is None:
                            raise RuntimeError(f"{key} found nothing for {case} {session} {seq}")
            for key, values in samples.items():
                s = add_latency(ctx, NAME, case, key, values)
                ctx.log(f"  pg rep {rep + 1} {case:14} {key:5} p50 {s['p50_us']:8.1f} µs")
    finally:
        _close(url, lanes, schemas)


def _writer(
    key: str, url: str, schema: str, session: str, index: int, n: int, barrier: Any, results: Any
) -> None:  # runs in a child process
    from benchmarks.contenders import postgres as pg

    try:
        lane: Any = (
            pg.StoreLane(url, schema, retention=False)
            if key == "store"
            else pg.SaverLane(url, schema)
        )
        for step in range(1, 4):
            lane.create(f"warm-{index}", name_for(index, step), payload_for(index, step))
        items = [(name_for(index, s), payload_for(index, s)) for s in range(1, n + 1)]
        barrier.wait(timeout=TIMEOUT_S)
    except BaseException as exc:  # noqa: BLE001 - report to the parent, free the others
        barrier.abort()
        results.put((index, math.nan, math.nan, n, f"{type(exc).__name__}: {exc}"))
        return
    errors = 0
    first = ""
    t0 = time.perf_counter()
    for name, data in items:
        try:
            lane.create(session, name, data)
        except Exception as exc:  # noqa: BLE001 - counted
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
    t1 = time.perf_counter()
    lane.close()
    results.put((index, t0, t1, errors, first))


def _check_ids(url: str, schema: str, sessions: list[str], n: int) -> int:
    """Missing, duplicated or out-of-range store ids (0 when unique and gapless)."""
    import psycopg

    from benchmarks.contenders.postgres import libpq

    expected: dict[str, int] = {}
    for session in sessions:
        expected[session] = expected.get(session, 0) + n
    bad = 0
    with psycopg.connect(libpq(url), options=f"-csearch_path={schema}") as conn:
        for session, count in expected.items():
            held, low, high, distinct = conn.execute(
                "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM checkpoints "
                "WHERE session_id = %s",
                (session,),
            ).fetchone()
            if not (held == distinct == count and low == 1 and high == count):
                bad += abs(count - distinct) or 1
    return bad


def _writers(ctx: Context, url: str, rep: int, n: int) -> None:
    from benchmarks.contenders import postgres as pg

    cases = {
        f"{PROCS} writers, distinct sessions": [f"w{i}" for i in range(PROCS)],
        f"{PROCS} writers, shared session": ["shared"] * PROCS,
    }
    keys = ["store"] + ([] if pg.SAVER_ERROR is not None else ["b"])
    for case, sessions in cases.items():
        for key in rotate(keys, rep):
            if key == "b" and "shared" in case:
                continue  # a LangGraph thread has one writer; the target is distinct threads
            schema = pg.new_schema(url, f"w{key}")
            try:
                # The schema first, not raced by the writers.
                (pg.StoreLane(url, schema) if key == "store" else pg.SaverLane(url, schema)).close()
                rate, errors, first = _run_writers(key, url, schema, sessions, n)
                if key == "store" and not math.isnan(rate):
                    errors += _check_ids(url, schema, sessions, n)
            finally:
                pg.drop_schema(url, schema)
            ctx.results.add(NAME, case, "creates/s", key, rate, higher_is_better=True)
            ctx.results.add(NAME, case, "errors", key, float(errors))
            if first:
                ctx.results.note(NAME, f"{key} {case} rep {rep + 1}: {first}")
            ctx.log(f"  pg rep {rep + 1} {case:30} {key:5} {rate:8.0f} creates/s errors {errors}")


def _run_writers(
    key: str, url: str, schema: str, sessions: list[str], n: int
) -> tuple[float, int, str]:
    spawn = mp.get_context("forkserver")
    barrier = spawn.Barrier(len(sessions))
    results = spawn.Queue()
    procs = [
        spawn.Process(target=_writer, args=(key, url, schema, s, i, n, barrier, results))
        for i, s in enumerate(sessions)
    ]
    for proc in procs:
        proc.start()
    rows = []
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
    if not starts or len(rows) < len(procs):
        return math.nan, errors, first or "a writer did not report"
    return (n * len(procs) - errors) / (max(ends) - min(starts)), errors, first


def document(n: int) -> str:
    """An export document of ``n`` ~1 KB checkpoints from another session."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entries = [
        {
            "id": f"source:{step}",
            "name": name_for(2, step),
            "timestamp": (start + timedelta(seconds=step)).isoformat(),
            "data": payload_for(2, step),
            "metadata": {},
        }
        for step in range(1, n + 1)
    ]
    return json.dumps(entries, ensure_ascii=False, indent=2)


def _import(ctx: Context, url: str, rep: int, n: int) -> None:
    from benchmarks.contenders import postgres as pg

    text = document(n)
    schema = pg.new_schema(url, "imp")
    lane = pg.StoreLane(url, schema)
    try:
        t0 = time.perf_counter()
        count = lane.import_(f"imported-{rep}", text)
        seconds = time.perf_counter() - t0
    finally:
        lane.close()
        pg.drop_schema(url, schema)
    if count != n:
        raise RuntimeError(f"imported {count} of {n}")
    ctx.results.add(NAME, "import", "checkpoints/s", "store", n / seconds, higher_is_better=True)
    ctx.log(f"  pg rep {rep + 1} import {n / seconds:9.0f} checkpoints/s")
