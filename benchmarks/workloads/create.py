"""Workload 1: durable creates in one session at ``durability="full"`` and ``"normal"``.

Every repetition gives every contender a fresh database; all contenders' databases
are open at once and the contenders take turns in blocks of ``BLOCK`` creates (see
``interleaved_creates``), the two durability levels alternating between repetitions.
The store and (c) run with their defaults (compression on: the product as shipped);
(a) and (b) have no retention. Workload 5 measures the store without compression.
"""

from __future__ import annotations

from contextlib import ExitStack

from benchmarks.contenders import Writer
from benchmarks.contenders.base import Durability
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

NAME = "create"
SESSION = "bench-create"
LEVELS: tuple[Durability, ...] = ("full", "normal")
BLOCK = 100


def run(ctx: Context) -> None:
    """``create_n`` timed creates per contender, level and repetition."""
    cfg = ctx.config
    for rep in range(cfg.reps):
        for level in rotate(LEVELS, rep):
            _one_level(ctx, rep, level)
    ctx.results.note(
        NAME,
        f"{cfg.create_n} timed creates in one session per repetition after "
        f"{cfg.warmup} untimed; a fresh database each time; contenders interleaved in "
        f"blocks of {BLOCK}. store and (c) use the manager defaults "
        "(compress_after=50, max_checkpoints=100).",
    )


def _one_level(ctx: Context, rep: int, level: Durability) -> None:
    cfg = ctx.config
    lanes: dict[str, Writer] = {}
    paths: list[str] = []
    with ExitStack() as stack:
        for contender in ctx.contenders:
            path = ctx.db_path(f"create-{level}-{contender.key}")
            paths.append(path)
            try:
                backend = stack.enter_context(opened(contender, path, level))
                writer = backend.writer(SESSION)
                timed_creates(writer.create, 0, 1, cfg.warmup)
            except Exception as exc:  # noqa: BLE001 - record and go on
                add_failure(ctx, NAME, level, contender.key, exc)
                continue
            lanes[contender.key] = writer
        samples, failed = interleaved_creates(lanes, 0, cfg.warmup + 1, cfg.create_n, rep, BLOCK)
    for path in paths:
        remove_db(path)
    for key in lanes:
        if key in failed:
            add_failure(ctx, NAME, level, key, failed[key])
            continue
        s = add_latency(ctx, NAME, level, key, samples[key])
        ctx.log(
            f"  create rep {rep + 1} {level:6} {key:5} "
            f"p50 {s['p50_us']:8.1f} µs  p99 {s['p99_us']:8.1f} µs"
        )
