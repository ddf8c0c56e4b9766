"""Workload 5: what compression costs per create, and one big compression.

(1) ``create_n`` creates in one session with the manager defaults
(``compress_after=50``) against the same without compression
(``compress_after=max_checkpoints=10**9``), at ``durability="normal"`` so that fsync
does not hide the work; the ratio is taken per repetition. "Late/early" is the p50 of
the last tenth of the creates over the p50 of the first tenth: it stays near 1 when the
cost does not grow with the session's history. (2) A session of
``compression_session`` checkpoints written without compression, then one create
through a manager with the defaults: that create pays for the whole compression.
Only contenders with retention take part: the store and (c).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from benchmarks.contenders import Contender, Retention, Writer
from benchmarks.contenders.base import Durability
from benchmarks.payload import name_for, payload_for
from benchmarks.stats import latency_summary
from benchmarks.workloads.common import (
    Context,
    add_failure,
    add_latency,
    interleaved_creates,
    opened,
    remove_db,
    rotate,
    timed_creates,
)

NAME = "compression"
DURABILITY: Durability = "normal"
WITH_RETENTION = ("store", "c")
SESSION = "bench-compress"
CASES: dict[str, Retention] = {"defaults": "default", "without": "off"}
ONE_SHOT = "one compression"
BLOCK = 100


def run(ctx: Context) -> None:
    """Both parts, store and (c) interleaved per repetition."""
    cfg = ctx.config
    contenders = [c for c in ctx.contenders if c.key in WITH_RETENTION]
    for rep in range(cfg.reps):
        _per_create(ctx, rep, contenders)
        for contender in rotate(contenders, rep):
            _one_shot(ctx, rep, contender)
    ctx.results.note(
        NAME,
        f"{cfg.create_n} timed creates per repetition at durability={DURABILITY!r}, "
        f"the four lanes (contender x case) interleaved in blocks of {BLOCK}; "
        f"one compression of a {cfg.compression_session}-checkpoint session.",
    )


def _per_create(ctx: Context, rep: int, contenders: list[Contender]) -> None:
    cfg = ctx.config
    lanes: dict[str, Writer] = {}
    where: dict[str, tuple[str, str]] = {}  # lane -> (case, contender key)
    paths: list[str] = []
    with ExitStack() as stack:
        for case, retention in CASES.items():
            for contender in contenders:
                path = ctx.db_path(f"compress-{case}-{contender.key}")
                paths.append(path)
                try:
                    backend = stack.enter_context(opened(contender, path, DURABILITY))
                    writer = backend.writer(SESSION, retention)
                    timed_creates(writer.create, 0, 1, cfg.warmup)
                except Exception as exc:  # noqa: BLE001 - record and go on
                    add_failure(ctx, NAME, case, contender.key, exc)
                    continue
                lane = f"{contender.key}|{case}"
                lanes[lane] = writer
                where[lane] = (case, contender.key)
        samples, failed = interleaved_creates(lanes, 0, cfg.warmup + 1, cfg.create_n, rep, BLOCK)
    for path in paths:
        remove_db(path)
    for lane, (case, key) in where.items():
        if lane in failed:
            add_failure(ctx, NAME, case, key, failed[lane])
            continue
        s = add_latency(ctx, NAME, case, key, samples[lane])
        tenth = max(1, len(samples[lane]) // 10)
        early = latency_summary(samples[lane][:tenth])["p50_us"]
        late = latency_summary(samples[lane][-tenth:])["p50_us"]
        ctx.results.add(NAME, case, "late/early p50", key, late / early)
        ctx.log(
            f"  compression rep {rep + 1} {case:8} {key:5} "
            f"p50 {s['p50_us']:8.1f} µs  late/early {late / early:5.2f}"
        )


def _one_shot(ctx: Context, rep: int, contender: Contender) -> None:
    key = contender.key
    n = ctx.config.compression_session
    path = ctx.db_path(f"compress-once-{key}")
    try:
        with opened(contender, path, DURABILITY) as backend:
            backend.fill([(1, SESSION)], n)
            writer = backend.writer(SESSION, "default")
            name, data = name_for(1, n + 1), payload_for(1, n + 1)
            t0 = time.perf_counter_ns()
            writer.create(name, data)
            ms = (time.perf_counter_ns() - t0) / 1e6
    except Exception as exc:  # noqa: BLE001 - record and go on
        ms = float("nan")
        ctx.results.note(NAME, f"{key} {ONE_SHOT} rep {rep + 1}: {type(exc).__name__}: {exc}")
    finally:
        remove_db(path)
    ctx.results.add(NAME, f"{ONE_SHOT} of {n}", "ms", key, ms)
    ctx.log(f"  compression rep {rep + 1} one-shot {key:5} {ms:8.2f} ms")
