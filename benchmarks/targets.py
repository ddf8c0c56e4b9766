"""The targets of issue 6, each judged on the median of per-repetition figures."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.stats import Results, Spread, ratios
from benchmarks.workloads.bulk import PEAK, PEAK_TENTH

Verdict = tuple[str, str]  # (measured, PASS | FAIL | n/a | INFO)
Key = tuple[str, str, str, str]  # (workload, case, metric, contender)
Judge = Callable[[Results], Verdict]
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """One line of the Targets table."""

    label: str
    threshold: str
    judge: Judge


def fmt_spread(s: Spread, digits: int = 2) -> str:
    """``median [min–max]``."""
    if s.n == 0:
        return "n/a"
    return f"{s.median:.{digits}f} [{s.min:.{digits}f}–{s.max:.{digits}f}]"


def _verdict(s: Spread, op: str, limit: float, text: str) -> Verdict:
    if s.n == 0:  # measured, but every repetition failed
        return "failed", "FAIL"
    return text, "PASS" if COMPARE[op](s.median, limit) else "FAIL"


def ratio(num: Key, den: Key, op: str, limit: float) -> Judge:
    """Median of the per-repetition ratios ``num/den`` compared with ``limit``."""

    def judge(results: Results) -> Verdict:
        a, b = results.get(*num), results.get(*den)
        if a is None or b is None:
            return "n/a", "n/a"
        s = ratios(a, b)
        return _verdict(s, op, limit, f"{fmt_spread(s)} ×")

    return judge


def value(key: Key, op: str, limit: float, unit: str) -> Judge:
    """Median of the figure compared with ``limit``."""

    def judge(results: Results) -> Verdict:
        fig = results.get(*key)
        if fig is None:
            return "n/a", "n/a"
        s = fig.spread
        digits = 0 if s.n and abs(s.median) >= 100 else 2
        return _verdict(s, op, limit, f"{fmt_spread(s, digits)} {unit}")

    return judge


def writers_vs_one(suffix: str) -> Judge:
    """Store throughput of the many-writer case ending in ``suffix`` over one writer's."""

    def judge(results: Results) -> Verdict:
        for fig in results.figures("writers"):
            if fig.contender == "store" and fig.metric == "creates/s" and fig.case.endswith(suffix):
                return ratio(
                    ("writers", fig.case, "creates/s", "store"),
                    ("writers", "1 writer", "creates/s", "store"),
                    ">=",
                    0.8,
                )(results)
        return "n/a", "n/a"

    return judge


def zero_errors(results: Results) -> Verdict:
    """Every writer case of the store, every repetition: no error, no lost create."""
    figs = [
        f for f in results.figures("writers") if f.contender == "store" and f.metric == "errors"
    ]
    if not figs:
        return "n/a", "n/a"
    total = sum(v for f in figs for v in f.values)
    return f"{total:.0f} errors", "PASS" if total == 0 else "FAIL"  # NaN (a crash) fails


def pg_writer_errors(results: Results) -> Verdict:
    """Every PostgreSQL writer case of the store: no error, ids unique and gapless."""
    figs = [
        f for f in results.figures("postgres") if f.contender == "store" and f.metric == "errors"
    ]
    if not figs:
        return "n/a", "n/a"
    total = sum(v for f in figs for v in f.values)
    return f"{total:.0f} errors", "PASS" if total == 0 else "FAIL"


#: How much a session ten times larger may raise a streaming peak and still count as
#: constant memory: allocator and page-cache noise, far below the document's size.
STREAM_SLACK_MIB = 8.0


def bulk_memory(results: Results) -> Verdict:
    """The streaming export and import: the peak at ``bulk_n`` against a tenth of it."""
    growth = []
    parts = []
    for case in ("export", "import"):
        at_full = results.get("bulk", f"{case}, streamed", PEAK, "store")
        at_tenth = results.get("bulk", f"{case}, streamed", PEAK_TENTH, "store")
        if at_full is None or at_tenth is None:
            return "n/a", "n/a"
        growth.append(at_full.spread.median - at_tenth.spread.median)
        parts.append(
            f"{case} +{at_full.spread.median:.0f} MiB (+{at_tenth.spread.median:.0f} at a tenth)"
        )
    doc = results.get("bulk", "document", "MiB", "store")
    size = f" for a {doc.spread.median:.0f} MiB document" if doc is not None else ""
    ok = all(g <= STREAM_SLACK_MIB for g in growth)  # NaN fails
    return f"streamed: {', '.join(parts)}{size}", "PASS" if ok else "FAIL"


def bulk_string_memory(results: Results) -> Verdict:
    """Peak RSS of the string API (``export()``, ``import_checkpoints(json)``): read."""
    ex = results.get("bulk", "export", "peak RSS MiB", "store")
    im = results.get("bulk", "import", "peak RSS MiB", "store")
    doc = results.get("bulk", "document", "MiB", "store")
    if ex is None or im is None or doc is None:
        return "n/a", "n/a"
    return (
        f"peak +{ex.spread.median:.0f} MiB (export), +{im.spread.median:.0f} MiB (import) "
        f"for a {doc.spread.median:.0f} MiB document: one string holds it all",
        "INFO",
    )


def bulk_floor(results: Results) -> Verdict:
    """What SQLite's part of an import costs alone, in (a): the bound on any import."""
    floor = results.get("bulk", "import, SQLite write only", "checkpoints/s", "a")
    if floor is None:
        return "n/a", "n/a"
    return (
        f"{floor.spread.median:.0f} /s: (a)'s rows prepared beforehand, only the "
        "executemany and the durable commit timed",
        "INFO",
    )


def _p50(workload: str, case: str, contender: str) -> Key:
    return (workload, case, "p50 µs", contender)


TARGETS: tuple[Target, ...] = (
    Target(
        "create p50 at normal vs (a)",
        "≤ 1.25 × (a)",
        ratio(_p50("create", "normal", "store"), _p50("create", "normal", "a"), "<=", 1.25),
    ),
    Target(
        "create p50 at normal vs (b)",
        "< 1 × (b)",
        ratio(_p50("create", "normal", "store"), _p50("create", "normal", "b"), "<", 1.0),
    ),
    Target(
        "create p50 at full vs (a)",
        "≤ 1.1 × (a)",
        ratio(_p50("create", "full", "store"), _p50("create", "full", "a"), "<=", 1.1),
    ),
    Target(
        "get_latest() p50 vs (a)",
        "≤ 1.3 × (a)",
        ratio(_p50("reads", "get_latest", "store"), _p50("reads", "get_latest", "a"), "<=", 1.3),
    ),
    Target(
        "get_latest() p50 vs (b) get_tuple",
        "< 1 × (b)",
        ratio(_p50("reads", "get_latest", "store"), _p50("reads", "get_latest", "b"), "<", 1.0),
    ),
    Target(
        "get(id) p50 vs (a)",
        "≤ 1.3 × (a)",
        ratio(_p50("reads", "get", "store"), _p50("reads", "get", "a"), "<=", 1.3),
    ),
    Target(
        "get(id) p50 vs (b) get_tuple",
        "< 1 × (b)",
        ratio(_p50("reads", "get", "store"), _p50("reads", "get", "b"), "<", 1.0),
    ),
    Target(
        "cold restart, whole process, vs (b)",
        "< 1 × (b)",
        ratio(
            ("cold_restart", "process wall", "ms", "store"),
            ("cold_restart", "process wall", "ms", "b"),
            "<",
            1.0,
        ),
    ),
    Target(
        "create p50 with compression (defaults) vs without",
        "≤ 1.5 ×",
        ratio(
            _p50("compression", "defaults", "store"),
            _p50("compression", "without", "store"),
            "<=",
            1.5,
        ),
    ),
    Target(
        "compression cost independent of session length (p50 last/first tenth)",
        "≤ 1.25 × (our reading)",
        value(("compression", "defaults", "late/early p50", "store"), "<=", 1.25, "×"),
    ),
    Target(
        "RSS growth over the memory workload's creates",
        "≤ 5 MiB",
        value(("memory", "RSS growth", "MiB", "store"), "<=", 5.0, "MiB"),
    ),
    Target(
        "bulk export",
        "≥ 50,000 checkpoints/s",
        value(("bulk", "export", "checkpoints/s", "store"), ">=", 50_000, "/s"),
    ),
    Target(
        "bulk import",
        "≥ 50,000 checkpoints/s",
        value(("bulk", "import", "checkpoints/s", "store"), ">=", 50_000, "/s"),
    ),
    Target("bulk import, SQLite's part alone", "the ceiling for any import", bulk_floor),
    Target(
        "bulk, constant memory (streamed export and import)",
        f"peak at bulk_n ≤ peak at bulk_n/10 + {STREAM_SLACK_MIB:.0f} MiB",
        bulk_memory,
    ),
    Target("bulk, the string API's memory", "read next to the document", bulk_string_memory),
    Target(
        "many writers, distinct sessions vs one writer",
        "≥ 0.8 ×",
        writers_vs_one("distinct sessions"),
    ),
    Target(
        "many writers, shared session vs one writer", "≥ 0.8 ×", writers_vs_one("shared session")
    ),
    Target("many writers: errors and lost creates", "0", zero_errors),
    Target(
        "many agents, K=100 SQLite: async creates/s vs AsyncSqliteSaver",
        "≥ 5 ×",
        ratio(
            ("agents", "K=100 sqlite", "creates/s", "async"),
            ("agents", "K=100 sqlite", "creates/s", "lg-async"),
            ">=",
            5.0,
        ),
    ),
    Target(
        "many agents, K=100 SQLite: async p99 vs AsyncSqliteSaver",
        "< 1 ×",
        ratio(
            ("agents", "K=100 sqlite", "p99 ms", "async"),
            ("agents", "K=100 sqlite", "p99 ms", "lg-async"),
            "<",
            1.0,
        ),
    ),
    Target(
        "many agents, K=100 PostgreSQL: async creates/s vs AsyncPostgresSaver",
        "≥ 2 ×",
        ratio(
            ("agents", "K=100 postgres", "creates/s", "async-pg"),
            ("agents", "K=100 postgres", "creates/s", "lg-async-pg"),
            ">=",
            2.0,
        ),
    ),
    Target(
        "many agents, K=1: async create p50 vs the sync create's",
        "≤ 1.3 ×",
        ratio(
            ("agents", "K=1 sqlite", "p50 ms", "async"),
            ("agents", "K=1 sqlite", "p50 ms", "sync"),
            "<=",
            1.3,
        ),
    ),
    *(
        Target(
            f"many agents, K={k} SQLite: event-loop lag p99 (async)",
            "≤ 2 ms",
            value(("agents", f"K={k} sqlite", "lag p99 ms", "async"), "<=", 2.0, "ms"),
        )
        for k in (1, 10, 100, 1000)
    ),
    *(
        Target(
            f"many agents, K={k} PostgreSQL: event-loop lag p99 (async)",
            "≤ 2 ms",
            value(("agents", f"K={k} postgres", "lag p99 ms", "async-pg"), "<=", 2.0, "ms"),
        )
        for k in (1, 10, 100, 1000)
    ),
    *(
        Target(
            label,
            threshold,
            ratio(_p50("postgres", case, "store"), _p50("postgres", case, "b"), "<=", 0.8),
        )
        for label, threshold, case in (
            ("PostgreSQL create p50 at ~1 KB vs PostgresSaver.put", "≤ 0.8 × (b)", "create 1 KB"),
            (
                "PostgreSQL create p50 at ~100 KB vs PostgresSaver.put",
                "≤ 0.8 × (b)",
                "create 100 KB",
            ),
            ("PostgreSQL get_latest() p50 vs PostgresSaver.get_tuple", "≤ 0.8 × (b)", "get_latest"),
            ("PostgreSQL get(id) p50 vs PostgresSaver.get_tuple", "≤ 0.8 × (b)", "get"),
        )
    ),
    *(
        Target(
            f"PostgreSQL {case} vs PostgresSaver on distinct threads",
            "≥ 1 × (b)",
            ratio(
                ("postgres", case, "creates/s", "store"),
                ("postgres", "8 writers, distinct sessions", "creates/s", "b"),
                ">=",
                1.0,
            ),
        )
        for case in ("8 writers, distinct sessions", "8 writers, shared session")
    ),
    Target("PostgreSQL writers: errors, duplicate or missing ids", "0", pg_writer_errors),
    Target(
        "PostgreSQL import",
        "≥ 50,000 checkpoints/s",
        value(("postgres", "import", "checkpoints/s", "store"), ">=", 50_000, "/s"),
    ),
    *(
        Target(
            f"large state {label}: {what}",
            "≤ 1 × " + den,
            ratio(
                _p50("large_states", f"{kind} {label}", "store"),
                _p50("large_states", f"{kind} {label}", den.strip("()")),
                "<=",
                1.0,
            ),
        )
        for label in ("1 KB", "120 KB", "1 MB")
        for kind, what, den in (
            ("create", "create p50 vs SqliteSaver.put", "(b)"),
            ("create", "create p50 vs raw sqlite3", "(a)"),
            ("get_latest", "get_latest() p50 vs SqliteSaver.get_tuple", "(b)"),
        )
    ),
    *(
        Target(
            f"create p50 with a lease vs without ({case})",
            "≤ 1.1 ×",
            ratio(_p50("leases", case, "store leased"), _p50("leases", case, "store"), "<=", 1.1),
        )
        for case in ("full", "normal", "postgres")
    ),
)
