"""Workload 9: large agent states on SQLite: a chat history at ~1 KB, ~120 KB and ~1 MB.

The state is ``benchmarks/chat_state.py``'s (messages of ~70 words, every fourth an
assistant turn with a tool call). Per size and repetition every durable contender
gets a fresh database at ``durability="full"``; the contenders take turns in blocks
(all databases open at once), creating into one session, then reading its latest
checkpoint back (``get_latest()`` / (b)'s ``get_tuple``, decoded). States are built
before the clock starts. The store runs with the manager's defaults.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from benchmarks.chat_state import SIZES, chat_state
from benchmarks.payload import name_for
from benchmarks.workloads.common import Context, add_failure, add_latency, opened, remove_db, rotate

NAME = "large_states"
SESSION = "bench-large"
BLOCK = 10


def _counts(ctx: Context, label: str) -> tuple[int, int]:
    """(creates, reads) per contender, size and repetition."""
    quick = ctx.config.quick
    return {
        "1 KB": (300, 300) if quick else (2_000, 2_000),
        "120 KB": (60, 100) if quick else (400, 400),
        "1 MB": (20, 30) if quick else (80, 100),
    }[label]


def run(ctx: Context) -> None:
    """Every size, every repetition."""
    for rep in range(ctx.config.reps):
        for label in rotate(list(SIZES), rep):
            _one(ctx, rep, label)
    ctx.results.note(
        NAME,
        "durability='full'; per size a fresh database per contender and repetition; "
        f"creates and reads interleaved in blocks of {BLOCK}; (a) writes the same JSON "
        "with the stdlib, (b) its msgpack blobs.",
    )


def _one(ctx: Context, rep: int, label: str) -> None:
    size = SIZES[label]
    creates, reads = _counts(ctx, label)
    lanes: dict[str, Any] = {}
    backends: dict[str, Any] = {}
    paths = []
    case_c, case_r = f"create {label}", f"get_latest {label}"
    with ExitStack() as stack:
        for contender in ctx.durable():
            path = ctx.db_path(f"large-{contender.key}")
            paths.append(path)
            try:
                backend = stack.enter_context(opened(contender, path, "full"))
                writer = backend.writer(SESSION)
                for step in range(1, 4):
                    writer.create(name_for(0, step), chat_state(step, size))
            except Exception as exc:  # noqa: BLE001 - record and go on
                add_failure(ctx, NAME, case_c, contender.key, exc)
                continue
            lanes[contender.key] = writer
            backends[contender.key] = backend
        samples: dict[str, list[int]] = {key: [] for key in lanes}
        for number, start in enumerate(range(0, creates, BLOCK)):
            states = [
                (name_for(0, s), chat_state(s, size)) for s in range(start + 4, start + 4 + BLOCK)
            ]
            for key in rotate(list(lanes), rep + number):
                create, append = lanes[key].create, samples[key].append
                for name, data in states:
                    t0 = time.perf_counter_ns()
                    create(name, data)
                    append(time.perf_counter_ns() - t0)
        read: dict[str, list[int]] = {key: [] for key in lanes}
        for number in range(0, reads // BLOCK):
            for key in rotate(list(lanes), rep + number):
                get_latest, append = backends[key].get_latest, read[key].append
                for _ in range(BLOCK):
                    t0 = time.perf_counter_ns()
                    found = get_latest(SESSION)
                    append(time.perf_counter_ns() - t0)
                    if found is None:
                        raise RuntimeError(f"{key}: no latest checkpoint")
    for path in paths:
        remove_db(path)
    for key in lanes:
        c = add_latency(ctx, NAME, case_c, key, samples[key])
        r = add_latency(ctx, NAME, case_r, key, read[key])
        ctx.log(
            f"  large rep {rep + 1} {label:6} {key:5} create p50 {c['p50_us']:9.1f} µs  "
            f"get_latest p50 {r['p50_us']:9.1f} µs"
        )
