"""RESULTS.md: machine line, date, a table per workload, the Targets table."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.config import Config
from benchmarks.contenders import Contender
from benchmarks.payload import encoded_size
from benchmarks.procinfo import machine_line
from benchmarks.stats import Figure, Results, ratios
from benchmarks.targets import TARGETS, fmt_spread

TITLES: dict[str, str] = {
    "create": "1. create — durable creates in one session",
    "reads": "2. point reads — get_latest() and get(id) of random sessions",
    "cold_restart": "3. cold restart — whole-process wall time",
    "writers": "4. many writers — separate processes",
    "compression": "5. compression — cost per create, and one big compression",
    "memory": "6. memory — RSS growth over many creates",
    "bulk": "7. bulk — export and import of one big session",
    "agents": "8. many agents — K asyncio tasks in one process (the async API)",
    "large_states": "10. large states — a chat history at ~1 KB, ~120 KB, ~1 MB (SQLite)",
    "postgres": "9. PostgreSQL — creates at ~1 KB and ~100 KB, reads, 8 writers, import",
}

# What bounds each workload's numbers for the comparators; the store's own account
# belongs in "What each optimisation bought".
READINGS: dict[str, str] = {
    "create": (
        "At `full` every commit waits for an fsync of the WAL, which dominates (a), (b) "
        "and the store alike; the gap between (a)'s `full` and `normal` p50 is that fsync. "
        "At `normal` the commit is a write() into the WAL and the per-create Python work "
        "(JSON encoding, statement execution, result handling) is what separates contenders."
    ),
    "reads": (
        "A read is a B-tree descent in a warm page cache plus decoding ~1 KB of JSON; "
        "(b) also queries its pending-writes table on every get_tuple. (c) is a list "
        "lookup for get_latest and a linear scan for get(id)."
    ),
    "cold_restart": (
        "Interpreter start-up (`floor`) plus imports: sqlite3 alone for (a); langchain-core "
        "and pydantic for (b); SQLAlchemy (and alembic only if the schema needs it) for the store."
    ),
    "writers": (
        "SQLite admits one writer at a time, so processes queue on the write lock "
        "(busy_timeout); at `full` the fsync per commit is the serial part that bounds "
        "the total."
    ),
    "compression": (
        "With compression on, each create past `compress_after` also runs the retention "
        "delete; its cost should depend on the number of rows kept, not on the history."
    ),
    "memory": (
        "Durable contenders should be flat (SQLite's page cache is bounded); the seed keeps "
        "every payload alive unless it compresses."
    ),
    "postgres": (
        "Every create commits once and waits for the WAL's fsync, the bulk of (a)'s time "
        "on this machine's shared disk; what separates the lanes is round trips (the "
        "store's create and reads are one each, as (a)'s; (b)'s put is one pipeline) and "
        "the server's work per commit: (b) writes each non-scalar channel to a blob row "
        "and the checkpoint as JSONB; the store one row (JSON text) and the session's row."
    ),
    "large_states": (
        "At `full` each commit waits for the fsync of a WAL that grows with the state "
        "(~1 MB per create at the top size); besides that, (b) packs msgpack in C and "
        "writes a BLOB; (a) and the store write JSON text, (a) with the stdlib encoder, "
        "the store with orjson after its strict check; reads decode the same bytes back."
    ),
    "bulk": (
        "Export is bounded by reading and re-encoding the JSON; the store's import by "
        "parsing and checking each entry on the caller's thread (the inserts overlap it on "
        "a second thread), then the one durable commit."
    ),
    "agents": (
        "`async` is AsyncCheckpointManager.create (group commit: the writes waiting at "
        "once share one transaction, each in a savepoint; a group's creates in three "
        "statements); `lg-async` LangGraph's AsyncSqliteSaver.aput; `to_thread` the sync "
        "create through asyncio.to_thread; `sync` the sync create called directly (K = 1); "
        "`async-pg`/`lg-async-pg` the same on PostgreSQL (AsyncPostgresSaver). Lag is "
        "what a 1 ms timer oversleeps while the agents run: on a loaded 2-core machine "
        "it is mostly the OS scheduler's, for every contender."
    ),
}


def _num(v: float) -> str:
    if math.isnan(v):
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


NO_RATIO_METRICS = frozenset({"errors", "late/early p50"})


def _ratio_cell(results: Results, fig: Figure, den: str) -> str:
    if fig.contender == den or fig.metric in NO_RATIO_METRICS:
        return ""
    other = results.get(fig.workload, fig.case, fig.metric, den)
    if other is None:
        return ""
    return fmt_spread(ratios(fig, other))


def _workload_table(results: Results, workload: str) -> list[str]:
    lines = [
        "| case | metric | contender | min | median | max | × (a) median [min–max] "
        "| × (b) median [min–max] |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fig in results.figures(workload):
        s = fig.spread
        better = " ↑" if fig.higher_is_better else ""
        lines.append(
            f"| {fig.case} | {fig.metric}{better} | {fig.contender} | {_num(s.min)} "
            f"| {_num(s.median)} | {_num(s.max)} | {_ratio_cell(results, fig, 'a')} "
            f"| {_ratio_cell(results, fig, 'b')} |"
        )
    return lines


def render(
    results: Results,
    config: Config,
    contenders: list[Contender],
    skipped: list[str],
    workloads: list[str],
    elapsed_s: float,
) -> str:
    """The whole RESULTS.md as a string."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (smoke-run sizes: not for conclusions)" if config.quick else "full"
    out = [
        "# breakpilot_store benchmarks",
        "",
        f"- Machine: {machine_line()}",
        f"- Date: {now}; run took {elapsed_s:.0f} s",
        f"- Mode: {mode}; {config.reps} repetitions, contenders interleaved in each",
        f"- Payload: ~{encoded_size()} bytes of JSON (step counter, 6 chat messages, a "
        "small state dict); names from a set of 10",
        "- Contenders: " + "; ".join(f"`{c.key}` = {c.label}" for c in contenders),
    ]
    out += [f"- Skipped: {line}" for line in skipped]
    out += [
        "",
        "Figures are min / median / max over the repetitions. Ratios are computed per "
        "repetition (same repetition, same machine state) and then summarised as "
        "median [min–max]; targets are judged on that median. ↑ marks higher-is-better. "
        "Regenerate with `python -m benchmarks --out benchmarks/RESULTS.md`.",
        "",
        "## Targets",
        "",
        "| target | threshold | measured: median [min–max] | status |",
        "| --- | --- | --- | --- |",
    ]
    for target in TARGETS:
        measured, status = target.judge(results)
        out.append(f"| {target.label} | {target.threshold} | {measured} | {status} |")
    for workload in workloads:
        out += ["", f"## {TITLES.get(workload, workload)}", ""]
        out += [f"- {line}" for line in results.notes.get(workload, [])]
        out += ["", *_workload_table(results, workload), ""]
        out.append(f"Reading: {READINGS.get(workload, '')}")
    # The account of the optimisations is written by hand (it compares builds of the
    # store, which one run cannot do) and kept beside this file; it is copied in so
    # that RESULTS.md stays one self-contained report.
    account = Path(__file__).with_name("OPTIMISATIONS.md")
    out += ["", account.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(out)
