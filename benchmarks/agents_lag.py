"""Where the event loop's lag comes from in the many-agents workload (Linux).

``python -m benchmarks.agents_lag [--k 1,10,100,1000] [--per-task N] [--url URL]``

Runs this store's async API as the ``agents`` workload does (K tasks, one session each,
durable creates of the ~1 KB payload, a 1 ms ticker beside them) and splits every tick's
oversleep with the loop thread's scheduler statistics
(``/proc/self/task/<tid>/schedstat``: time on a CPU, time runnable but waiting for one).
On a machine shared with other busy processes most of a long tick can be run-queue wait:
the loop was ready and the OS ran something else, which no code in the process can
change. ``lag p99 less run-queue wait`` estimates what the same run shows on a quiet
machine; the workload's targets stay on the plain lag. Also the CPU per create of the
whole process and of the loop's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import threading
import time
from typing import Any

from benchmarks.payload import name_for, payload_for
from benchmarks.stats import percentile
from benchmarks.workloads.agents import _pg_schema


def _schedstat() -> tuple[int, int]:
    """This thread's (ns on a CPU, ns runnable but waiting for a CPU)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        on_cpu, waiting, _ = f.read().split()
    return int(on_cpu), int(waiting)


async def _run(url: str, k: int, per_task: int) -> dict[str, Any]:
    from breakpilot_store import AsyncCheckpointManager, AsyncCheckpointStore

    async with AsyncCheckpointStore(url, durability="full") as store:
        managers = [AsyncCheckpointManager(f"agent-{i}", store=store) for i in range(k)]
        for m in managers[:50]:
            await m.create("warm", {})
        payloads = [[payload_for(i, s) for s in range(1, per_task + 1)] for i in range(k)]
        ticks: list[tuple[float, float]] = []  # (lag, lag less run-queue wait), ms
        running = True

        async def ticker() -> None:
            while running:
                waited0 = _schedstat()[1]
                t0 = time.perf_counter()
                await asyncio.sleep(0.001)
                lag = (time.perf_counter() - t0 - 0.001) * 1e3
                waited = (_schedstat()[1] - waited0) / 1e6
                ticks.append((lag, max(lag - waited, 0.0)))

        async def agent(i: int) -> None:
            create = managers[i].create
            for step in range(1, per_task + 1):
                await create(name_for(i, step), payloads[i][step - 1])

        gc.collect()  # as the workload does: the payloads' garbage is not the run's
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        ticks.clear()
        t0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
        await asyncio.gather(*(agent(i) for i in range(k)))
        wall = time.perf_counter() - t0
        cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop0
        running = False
        await tick
    n = k * per_task
    worst = sorted(ticks, reverse=True)[:5]
    return {
        "creates/s": n / wall,
        "ticks": len(ticks),
        "lag p99": percentile(sorted(t[0] for t in ticks), 0.99),
        "less run-queue wait": percentile(sorted(t[1] for t in ticks), 0.99),
        "cpu us/create": cpu / n * 1e6,
        "loop us/create": loop_cpu / n * 1e6,
        "worst (lag, less wait)": [(round(a, 2), round(b, 2)) for a, b in worst],
    }


def main() -> None:
    """Run the cases given on the command line; print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="1,10,100,1000", help="comma-separated K values")
    parser.add_argument("--per-task", type=int, help="creates per task (default by K)")
    parser.add_argument(
        "--url",
        help="a postgresql:// server URL: each case runs in a fresh schema there, dropped "
        "after it (default: a SQLite file)",
    )
    args = parser.parse_args()
    per = {1: 400, 10: 100, 100: 60, 1000: 20}
    for k in (int(x) for x in args.k.split(",")):
        drop = None
        if args.url:
            # Never the server's default schema: a store's tables left there would be
            # found by every later user of that database (the test suite included).
            base = args.url.replace("postgresql+psycopg://", "postgresql://", 1)
            _, url, drop = _pg_schema(base)
        else:
            url = os.path.join(tempfile.mkdtemp(), "agents.db")
        try:
            figures = asyncio.run(_run(url, k, args.per_task or per.get(k, 20)))
        finally:
            if drop is not None:
                drop()
        shown = ", ".join(
            f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
            for key, value in figures.items()
        )
        print(f"K={k}: {shown}", flush=True)


if __name__ == "__main__":
    main()
