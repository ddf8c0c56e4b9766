"""Workload 6: RSS growth over ``memory_n`` creates in one session.

One child process per contender and repetition (``benchmarks.probes memory``): it
warms up with n/10 creates (n/5 below 10,000), collects garbage, reads VmRSS, does ``n``
creates, collects again and reads VmRSS again. Durability ``"normal"``. The seed is
shown with its defaults and without compression (where it keeps every checkpoint).
"""

from __future__ import annotations

from benchmarks.workloads.common import Context, remove_db, rotate
from benchmarks.workloads.probe_runner import run_probe

NAME = "memory"
CASE = "RSS growth"
METRIC = "MiB"


def run(ctx: Context) -> None:
    """Interleave the variants per repetition; one child per run."""
    cfg = ctx.config
    variants: list[tuple[str, str, str]] = []  # (label, contender key, retention)
    for contender in ctx.contenders:
        variants.append((contender.key, contender.key, "default"))
        if not contender.durable:
            variants.append((f"{contender.key} (no compression)", contender.key, "off"))
    for rep in range(cfg.reps):
        for label, key, retention in rotate(variants, rep):
            path = ctx.db_path(f"memory-{key}")
            try:
                out = run_probe(
                    [
                        "memory",
                        "--contender",
                        key,
                        "--db",
                        path,
                        "--n",
                        str(cfg.memory_n),
                        "--retention",
                        retention,
                    ]
                )
                growth = float(out["growth_mib"])
            except Exception as exc:  # noqa: BLE001 - record and go on
                growth = float("nan")
                ctx.results.note(NAME, f"{label} rep {rep + 1}: {exc}")
            finally:
                remove_db(path)
            ctx.results.add(NAME, CASE, METRIC, label, growth)
            ctx.log(f"  memory rep {rep + 1} {label:20} {growth:8.2f} MiB")
    ctx.results.note(
        NAME,
        f"{cfg.memory_n} creates after warm-up, durability='normal'; "
        "VmRSS after minus before (gc.collect() before each reading).",
    )
