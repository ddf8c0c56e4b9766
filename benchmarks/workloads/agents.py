"""Workload 8: many agents in one process (the async API, issue 15).

K = 1, 10, 100, 1000 asyncio tasks in one process, one session each, each doing durable
creates of the ~1 KB payload at ``durability="full"``, all at once. Per case and
contender: creates/s (all creates / wall time from the first start to the last
finish), p50/p99 latency of one ``await create``, and the event loop's lag: a 1 ms
ticker (``await asyncio.sleep(0.001)``) runs beside the agents and its oversleep is
recorded (p99 and max). Each (K, contender) runs in a fresh ``asyncio.run`` on a fresh
database (opening and schema not timed), contenders interleaved within a repetition.

Contenders (keys in the table):

* ``async``: this store's ``AsyncCheckpointManager.create`` (group commit);
* ``lg-async``: LangGraph's ``AsyncSqliteSaver.aput`` (aiosqlite; WAL and
  ``synchronous=FULL`` set on its connection, like (b) in the other workloads);
* ``to_thread``: the sync ``CheckpointManager.create`` through ``asyncio.to_thread``;
* ``sync``: (K = 1 only) the sync ``create`` called directly, the reference for the
  async API's single-agent overhead;
* on PostgreSQL (when ``BREAKPILOT_BENCH_POSTGRES_URL`` is set, a ``postgresql://`` URL;
  each run gets a schema of its own): ``async-pg`` (ours) and ``lg-async-pg``
  (LangGraph's ``AsyncPostgresSaver`` from ``from_conn_string``: one connection).

``BREAKPILOT_BENCH_AGENTS_K=1000`` (comma-separated) runs only those K.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from benchmarks.payload import name_for, payload_for
from benchmarks.stats import percentile
from benchmarks.workloads.common import Context

NAME = "agents"
PG_ENV = "BREAKPILOT_BENCH_POSTGRES_URL"
K_ENV = "BREAKPILOT_BENCH_AGENTS_K"

#: Creates each task does, by K: enough that a case runs for a second or more, so that
#: the lag's p99 is not just the burst of K tasks starting at once (the first turn of
#: the loop runs every task's first step, for every contender).
#: The store's K = 100 and 1,000 cases now run 15-20k creates/s, so 30 and 5 creates per
#: task lasted 0.2-0.3 s (~150 ticks: the p99 was the second-worst tick, the first
#: turn's burst or one full garbage collection); the quick run's counts keep ~100 or
#: more ticks per case too (with 4 creates per task at K = 100, ~30 ticks, the "p99"
#: was the maximum).
PER_TASK = {1: 400, 10: 100, 100: 60, 1000: 20}
QUICK_PER_TASK = {1: 200, 10: 40, 100: 20, 1000: 2}

Create = Callable[[int, int, dict[str, Any]], Awaitable[Any]]  # (task, step, data)


async def _measure(k: int, per_task: int, make: Callable[[int], Create]) -> dict[str, float]:
    """Run K tasks of ``per_task`` creates with a 1 ms ticker beside them."""
    creates = [make(i) for i in range(k)]
    payloads = [[payload_for(i, s) for s in range(1, per_task + 1)] for i in range(k)]
    latencies: list[int] = []
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)

    async def agent(i: int) -> None:
        create = creates[i]
        for step in range(1, per_task + 1):
            t0 = time.perf_counter_ns()
            await create(i, step, payloads[i][step - 1])
            latencies.append(time.perf_counter_ns() - t0)

    # The payloads just built (K x per_task nested dicts) would otherwise push the
    # collector into a full collection inside the timed window (40-120 ms on this
    # process's heap, one stall charged to whichever contender runs): collect now, as
    # every contender's setup is done.
    gc.collect()
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)  # the ticker is running
    lags.clear()
    t0 = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(k)))
    wall = time.perf_counter() - t0
    running = False
    await tick
    latencies.sort()
    lags.sort()
    return {
        "creates/s": len(latencies) / wall,
        "p50 ms": percentile(latencies, 0.5) / 1e6,
        "p99 ms": percentile(latencies, 0.99) / 1e6,
        "lag p99 ms": percentile(lags, 0.99) * 1e3 if lags else float("nan"),
        "lag max ms": lags[-1] * 1e3 if lags else float("nan"),
    }


# -- contenders: each opens its store, warms up, and measures make(i) -> create -------


async def _ours(url: str, k: int, per_task: int) -> dict[str, float]:
    from breakpilot_store import AsyncCheckpointManager, AsyncCheckpointStore

    async with AsyncCheckpointStore(url, durability="full") as store:
        managers = [AsyncCheckpointManager(f"agent-{i}", store=store) for i in range(k)]
        for m in managers[:50]:  # warm-up: sessions exist, threads and connections up
            await m.create("warm", {})

        def make(i: int) -> Create:
            create = managers[i].create
            return lambda i, step, data: create(name_for(i, step), data)

        return await _measure(k, per_task, make)


async def _to_thread(path: str, k: int, per_task: int) -> dict[str, float]:
    from breakpilot_store import CheckpointManager, CheckpointStore

    with CheckpointStore(path, durability="full") as store:
        managers = [CheckpointManager(f"agent-{i}", store=store) for i in range(k)]
        for m in managers[:50]:
            await asyncio.to_thread(m.create, "warm", {})

        def make(i: int) -> Create:
            create = managers[i].create
            return lambda i, step, data: asyncio.to_thread(create, name_for(i, step), data)

        return await _measure(k, per_task, make)


def _sync_direct(path: str, per_task: int) -> dict[str, float]:
    """K = 1, no event loop: the sync create's own latency (lag not applicable)."""
    from breakpilot_store import CheckpointManager, CheckpointStore

    with CheckpointStore(path, durability="full") as store:
        mgr = CheckpointManager("agent-0", store=store)
        mgr.create("warm", {})
        payloads = [payload_for(0, s) for s in range(1, per_task + 1)]
        latencies = []
        t0 = time.perf_counter()
        for step, data in enumerate(payloads, 1):
            t = time.perf_counter_ns()
            mgr.create(name_for(0, step), data)
            latencies.append(time.perf_counter_ns() - t)
        wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "creates/s": per_task / wall,
        "p50 ms": percentile(latencies, 0.5) / 1e6,
        "p99 ms": percentile(latencies, 0.99) / 1e6,
    }


def _lg_checkpoint(step: int, data: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime, timezone

    from langgraph.checkpoint.base import LATEST_VERSION
    from langgraph.checkpoint.base.id import uuid6

    return {
        "v": LATEST_VERSION,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(timezone.utc).isoformat(),
        "channel_values": data,
        "channel_versions": dict.fromkeys(data, step),
        "versions_seen": {},
        "updated_channels": None,
    }


def _lg_maker(saver: Any, k: int) -> Callable[[int], Create]:
    configs: list[dict[str, Any]] = [
        {"configurable": {"thread_id": f"agent-{i}", "checkpoint_ns": ""}} for i in range(k)
    ]

    def make(i: int) -> Create:
        async def create(i: int, step: int, data: dict[str, Any]) -> None:
            metadata = {"source": "loop", "step": step, "name": name_for(i, step)}
            configs[i] = await saver.aput(configs[i], _lg_checkpoint(step, data), metadata, {})

        return create

    return make


async def _lg_sqlite(path: str, k: int, per_task: int) -> dict[str, float]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = await aiosqlite.connect(path)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA busy_timeout=30000")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        make = _lg_maker(saver, k)
        for i in range(min(k, 50)):
            await make(i)(i, 0, {})
        return await _measure(k, per_task, make)
    finally:
        await conn.close()


async def _lg_postgres(url: str, k: int, per_task: int) -> dict[str, float]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        make = _lg_maker(saver, k)
        for i in range(min(k, 50)):
            await make(i)(i, 0, {})
        return await _measure(k, per_task, make)


# -- PostgreSQL schemas ----------------------------------------------------------------


def _pg_schema(base: str) -> tuple[str, str, Callable[[], None]]:
    """A fresh schema: (libpq URL, SQLAlchemy URL, drop) for one run."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    libpq = f"{base}{sep}options=-csearch_path%3D{schema}"
    ours = libpq.replace("postgresql://", "postgresql+psycopg://", 1)

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    return libpq, ours, drop


def run(ctx: Context) -> None:
    """Every K, every contender, ``ctx.config.reps`` times (at most 3), interleaved."""
    per_task = QUICK_PER_TASK if ctx.config.quick else PER_TASK
    ks = (1, 10, 100) if ctx.config.quick else (1, 10, 100, 1000)
    if os.environ.get(K_ENV):  # e.g. "1000": only those K (a long case on its own)
        ks = tuple(int(k) for k in os.environ[K_ENV].split(","))
    reps = min(ctx.config.reps, 3)
    pg = os.environ.get(PG_ENV)
    try:
        import aiosqlite  # noqa: F401
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: F401

        lg_sqlite = True
    except ImportError as exc:
        lg_sqlite = False
        ctx.results.note(NAME, f"lg-async skipped: {exc}")
    if pg is None:
        ctx.results.note(NAME, f"PostgreSQL not run: set {PG_ENV} to a postgresql:// URL")
    ctx.results.note(
        NAME,
        "durability full; one session per task; lag = oversleep of a 1 ms asyncio.sleep "
        f"ticker beside the agents; creates per task by K: {per_task}",
    )
    for rep in range(reps):
        for k in ks:
            n = per_task[k]
            runs: list[tuple[str, str, Callable[[], dict[str, float]]]] = []
            path = ctx.db_path(f"agents-{k}")
            runs.append(("sqlite", "async", partial(_in_loop, _ours, path, k, n)))
            if lg_sqlite:
                runs.append(("sqlite", "lg-async", partial(_in_loop, _lg_sqlite, path, k, n)))
            runs.append(("sqlite", "to_thread", partial(_in_loop, _to_thread, path, k, n)))
            if k == 1:
                runs.append(("sqlite", "sync", partial(_sync_direct, path, n)))
            if pg is not None:
                runs.append(("postgres", "async-pg", partial(_pg_run, pg, _ours, k, n, ours=True)))
                runs.append(("postgres", "lg-async-pg", partial(_pg_run, pg, _lg_postgres, k, n)))
            order = runs if rep % 2 == 0 else runs[::-1]  # interleaved, alternating order
            for backend, key, measure in order:
                ctx.db_path(f"agents-{k}")  # a fresh SQLite file for every contender
                ctx.log(f"  agents rep {rep + 1}/{reps} K={k} {backend} {key}")
                figures = measure()
                for metric, value in figures.items():
                    ctx.results.add(
                        NAME,
                        f"K={k} {backend}",
                        metric,
                        key,
                        value,
                        higher_is_better=metric == "creates/s",
                    )


def _in_loop(runner: Any, path: str, k: int, n: int) -> dict[str, float]:
    return asyncio.run(runner(path, k, n))


def _pg_run(base: str, runner: Any, k: int, n: int, *, ours: bool = False) -> dict[str, float]:
    libpq, sqlalchemy_url, drop = _pg_schema(base)
    try:
        return asyncio.run(runner(sqlalchemy_url if ours else libpq, k, n))
    finally:
        drop()
