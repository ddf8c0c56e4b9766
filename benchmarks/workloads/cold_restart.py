"""Workload 3: cold restart, the whole-process wall time of a fresh interpreter.

The child imports what a user of the contender imports, opens an existing database
(``cold_sessions`` x ``cold_per_session`` checkpoints), fetches one session's latest
checkpoint and exits. ``floor`` is ``python -c pass`` with the same interpreter and
environment: what no contender can beat. One untimed run of each warms the OS page
cache and the bytecode caches, as on any host that has run the agent before.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.workloads.common import REPO_ROOT, Context, remove_db, rotate, subprocess_env

NAME = "cold_restart"
CASE = "process wall"
METRIC = "ms"
FLOOR = "floor"


def _child_env() -> dict[str, str]:
    """The children's environment, with bytecode caches allowed.

    Installed packages come with theirs (pip compiles on install); a source checkout
    gets them on its first import, unless ``PYTHONDONTWRITEBYTECODE`` is set (it is on
    this machine): then every child would compile the checkout's modules anew, ~90 ms
    that no installed agent pays. The untimed warm-up run writes them.
    """
    env = subprocess_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_child(code: str, args: list[str]) -> tuple[float, str]:
    """Wall time in ms of one child, and its stderr tail if it failed."""
    t0 = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = (time.perf_counter() - t0) * 1e3
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return float("nan"), lines[-1] if lines else f"exit status {proc.returncode}"
    return elapsed, ""


def run(ctx: Context) -> None:
    """Build one database per durable contender, then time fresh processes."""
    cfg = ctx.config
    target = "agent:00000"
    jobs: dict[str, tuple[str, list[str]]] = {FLOOR: ("pass", [])}
    paths: list[str] = []
    for contender in ctx.durable():
        code = contender.cold_restart_code()
        if code is None:
            continue
        path = ctx.db_path(f"cold-{contender.key}")
        paths.append(path)
        try:
            backend = contender.open(path, "normal")
            try:
                backend.fill(
                    [(i, f"agent:{i:05d}") for i in range(cfg.cold_sessions)],
                    cfg.cold_per_session,
                )
            finally:
                backend.close()
        except Exception as exc:  # noqa: BLE001 - record and go on
            ctx.results.note(NAME, f"{contender.key}: building the database failed: {exc}")
            continue
        jobs[contender.key] = (code, [path, target])
    try:
        for key, (code, args) in jobs.items():  # warm-up, untimed
            _, err = _run_child(code, args)
            if err:
                ctx.results.note(NAME, f"{key}: child failed: {err}")
        order = list(jobs)
        for rep in range(cfg.reps):
            for key in rotate(order, rep):
                code, args = jobs[key]
                ms, err = _run_child(code, args)
                ctx.results.add(NAME, CASE, METRIC, key, ms)
                if err:
                    ctx.results.note(NAME, f"{key} rep {rep + 1}: child failed: {err}")
                ctx.log(f"  cold restart rep {rep + 1} {key:5} {ms:8.1f} ms")
    finally:
        for path in paths:
            remove_db(path)
    ctx.results.note(
        NAME,
        f"database of {cfg.cold_sessions} sessions x {cfg.cold_per_session} checkpoints; "
        "wall time from spawn to exit of `python -c CODE`, measured by the parent.",
    )
