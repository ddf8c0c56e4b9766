"""Workload 8: a lease-holding agent's creates against the same agent without a lease.

Issue 19's hot-path target: create with a lease costs at most 1.1 x create without.
Two lanes per level, each its own database, interleaved in blocks as in workload 1:
``store`` (a plain manager) and ``store leased`` (``lease=30``: the heartbeat renews
every 10 s, so a run of this size sees a few renewals, as an agent would). Both use the
manager defaults (compression on). The lease's check rides in the create's own
``INSERT``, so the figures compare one statement against one statement.

With ``BREAKPILOT_BENCH_POSTGRES_URL`` set, the same pair also runs on PostgreSQL (case
``postgres``), each lane in a throwaway schema.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from benchmarks.workloads.common import (
    Context,
    add_failure,
    add_latency,
    interleaved_creates,
    remove_db,
    rotate,
    timed_creates,
)

NAME = "leases"
SESSION = "bench-lease"
LEVELS = ("full", "normal")
BLOCK = 100
LEASE = 30.0
#: The contender names in the report.
PLAIN, LEASED = "store", "store leased"
PG_ENV = "BREAKPILOT_BENCH_POSTGRES_URL"


class _Writer:
    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def create(self, name: str, data: dict[str, Any]) -> str:
        return str(self._manager.create(name, data).id)


def run(ctx: Context) -> None:
    """``create_n`` timed creates per lane, level and repetition."""
    try:
        import breakpilot_store  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - nothing to measure
        add_failure(ctx, NAME, "full", LEASED, exc)
        return
    cfg = ctx.config
    cases: list[str] = list(LEVELS)
    if os.environ.get(PG_ENV):
        cases.append("postgres")
    for rep in range(cfg.reps):
        for case in rotate(cases, rep):
            _one_case(ctx, rep, case)
    ctx.results.note(
        NAME,
        f"{cfg.create_n} timed creates in one session per repetition after {cfg.warmup} "
        f"untimed; a fresh database each time; lanes interleaved in blocks of {BLOCK}; "
        f"'{LEASED}' holds a lease of {LEASE:.0f} s (heartbeat every {LEASE / 3:.0f} s).",
    )


@contextlib.contextmanager
def _store(ctx: Context, case: str, lane: str) -> Iterator[Any]:
    from breakpilot_store import CheckpointStore

    if case != "postgres":
        path = ctx.db_path(f"leases-{case}-{lane.replace(' ', '-')}")
        try:
            with CheckpointStore(path, durability=case) as store:  # type: ignore[arg-type]
                yield store
        finally:
            remove_db(path)
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(os.environ[PG_ENV])
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"bp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        confined = url.update_query_dict({"options": f"-csearch_path={schema}"})
        with CheckpointStore(confined) as store:
            yield store
    finally:
        with psycopg.connect(libpq, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _one_case(ctx: Context, rep: int, case: str) -> None:
    from breakpilot_store import CheckpointManager

    cfg = ctx.config
    lanes: dict[str, _Writer] = {}
    with ExitStack() as stack:
        for lane in (PLAIN, LEASED):
            try:
                store = stack.enter_context(_store(ctx, case, lane))
                extra = {"lease": LEASE} if lane == LEASED else {}
                manager = CheckpointManager(SESSION, store=store, **extra)
                stack.callback(manager.close)
                writer = _Writer(manager)
                timed_creates(writer.create, 0, 1, cfg.warmup)
            except Exception as exc:  # noqa: BLE001 - record and go on
                add_failure(ctx, NAME, case, lane, exc)
                continue
            lanes[lane] = writer
        samples, failed = interleaved_creates(lanes, 0, cfg.warmup + 1, cfg.create_n, rep, BLOCK)
    for lane in lanes:
        if lane in failed:
            add_failure(ctx, NAME, case, lane, failed[lane])
            continue
        s = add_latency(ctx, NAME, case, lane, samples[lane])
        ctx.log(
            f"  leases rep {rep + 1} {case:8} {lane:12} "
            f"p50 {s['p50_us']:8.1f} µs  p99 {s['p99_us']:8.1f} µs"
        )
