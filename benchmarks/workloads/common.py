"""What every workload shares: the run context, scratch databases, timed loops."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from benchmarks.config import Config
from benchmarks.contenders import Backend, Contender, Writer
from benchmarks.contenders.base import Durability
from benchmarks.payload import name_for, payload_for
from benchmarks.stats import Results, latency_summary

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """Everything a workload needs.

    Attributes:
        config: Run sizes.
        contenders: Usable contenders, in report order.
        results: Where figures go.
        workdir: Scratch directory for databases (removed by the runner).
        log: Progress printer (stderr).
    """

    config: Config
    contenders: list[Contender]
    results: Results
    workdir: Path
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))

    def durable(self) -> list[Contender]:
        """The contenders that write to disk (everything but (c))."""
        return [c for c in self.contenders if c.durable]

    def db_path(self, name: str) -> str:
        """A fresh database path in the scratch directory (old files removed)."""
        path = self.workdir / f"{name}.sqlite"
        remove_db(str(path))
        return str(path)


def remove_db(path: str) -> None:
    """Delete a SQLite database with its WAL, shared-memory and lock sidecars."""
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def warm_file(path: str) -> None:
    """Read a database file (and its WAL) through once, into the OS page cache.

    On this VM the page cache does not keep what was written, nor all of what was read:
    workloads that time reads of a big file warm it first, so that they measure the
    software rather than whichever pages happened to stay resident.
    """
    for name in (path, path + "-wal"):
        try:
            with open(name, "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
        except FileNotFoundError:
            pass


def rotate(items: Sequence[T], rep: int) -> list[T]:
    """``items`` rotated by ``rep``: each contender takes each slot in turn."""
    if not items:
        return []
    k = rep % len(items)
    return [*items[k:], *items[:k]]


@contextmanager
def opened(contender: Contender, path: str, durability: Durability) -> Iterator[Backend]:
    """Open a backend and always close it."""
    backend = contender.open(path, durability)
    try:
        yield backend
    finally:
        backend.close()


def timed_creates(
    create: Callable[[str, dict[str, object]], object],
    session_index: int,
    first_step: int,
    n: int,
    *,
    collect: bool = True,
) -> list[int]:
    """Call ``create`` ``n`` times; per-op ns, payload generation outside the clock.

    The garbage collector is collected before (unless ``collect`` is False) and left
    enabled during the loop: agents run with it on, and its pauses belong in p99.
    """
    samples: list[int] = []
    append = samples.append
    clock = time.perf_counter_ns
    if collect:
        gc.collect()
    for step in range(first_step, first_step + n):
        name = name_for(session_index, step)
        data = payload_for(session_index, step)
        t0 = clock()
        create(name, data)
        append(clock() - t0)
    return samples


def interleaved_creates(
    lanes: dict[str, Writer], session_index: int, first_step: int, n: int, rep: int, block: int
) -> tuple[dict[str, list[int]], dict[str, BaseException]]:
    """``n`` timed creates per lane, the lanes taking turns in blocks of ``block``.

    Every lane writes to its own database, all open at once; a burst of noise on the
    machine (another process's fsync, say) then hits every lane alike instead of
    whichever contender happened to run at that moment. The lane order rotates
    from block to block.

    Returns:
        Per-op samples per lane, and the error of each lane that failed (it stops).
    """
    samples: dict[str, list[int]] = {key: [] for key in lanes}
    failed: dict[str, BaseException] = {}
    gc.collect()
    for number, start in enumerate(range(0, n, block)):
        size = min(block, n - start)
        for key in rotate(list(lanes), rep + number):
            if key in failed:
                continue
            try:
                samples[key] += timed_creates(
                    lanes[key].create, session_index, first_step + start, size, collect=False
                )
            except Exception as exc:  # noqa: BLE001 - the lane stops, the others go on
                failed[key] = exc
    return samples, failed


def add_latency(
    ctx: Context, workload: str, case: str, contender: str, samples: list[int]
) -> dict[str, float]:
    """Record p50/p99/ops-per-second of one repetition."""
    summary = latency_summary(samples)
    ctx.results.add(workload, case, "p50 µs", contender, summary["p50_us"])
    ctx.results.add(workload, case, "p99 µs", contender, summary["p99_us"])
    ctx.results.add(workload, case, "ops/s", contender, summary["ops_s"], higher_is_better=True)
    return summary


def add_failure(ctx: Context, workload: str, case: str, contender: str, exc: BaseException) -> None:
    """A failed repetition: NaN figures and a note with the error."""
    for metric in ("p50 µs", "p99 µs"):
        ctx.results.add(workload, case, metric, contender, float("nan"))
    ctx.results.add(workload, case, "ops/s", contender, float("nan"), higher_is_better=True)
    line = f"{contender} failed in {case}: {type(exc).__name__}: {exc}"
    ctx.results.note(workload, line)
    ctx.log("  ! " + line)


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: the repository root first on PYTHONPATH."""
    env = dict(os.environ)
    parts = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
