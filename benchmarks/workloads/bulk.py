"""Workload 7: export and import of one ``bulk_n``-checkpoint session.

The source session is written once per run (without compression). Each repetition
runs a child (``benchmarks.probes bulk``) that exports it with the contender's export
(the seed's JSON format) and imports the document into a fresh database, timing each
and reading the peak RSS above the starting point (VmHWM reset before each step).
LangGraph's saver has no export/import and does not take part; (c) builds its session
in the child, in memory.

The store also runs its streaming forms in a second child (``benchmarks.probes
stream``): ``export_bytes`` to a file and ``read_document`` of that file into
``import_checkpoints``, which is what ``breakpilot-store export -o`` and ``import`` do,
on the ``bulk_n`` session and on a second source of a tenth of it, each size in a fresh
child. Constant memory is judged on those: a session ten times larger must not raise
the peak (the string API's ``export()`` returns one string and so cannot be constant).
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.contenders import Contender
from benchmarks.workloads.common import Context, remove_db, rotate, warm_file
from benchmarks.workloads.probe_runner import run_probe

NAME = "bulk"
PEAK = "peak RSS MiB"
PEAK_TENTH = "peak RSS MiB, a tenth the size"
TENTH_SOURCE = "bulk-src-store-tenth"
SESSION = "bench-bulk"
TAKES_PART = ("store", "a", "c")


def _source(ctx: Context, contender: Contender, n: int, path: str | None = None) -> str:
    path = path or ctx.db_path(f"bulk-src-{contender.key}")
    if contender.durable:
        backend = contender.open(path, "normal")
        try:
            backend.fill([(3, SESSION)], n)
        finally:
            backend.close()
    return path


def run(ctx: Context) -> None:
    """Build each source once, then interleave the children per repetition."""
    cfg = ctx.config
    sources: dict[str, str] = {}
    contenders = [c for c in ctx.contenders if c.key in TAKES_PART]
    for contender in contenders:
        try:
            sources[contender.key] = _source(ctx, contender, cfg.bulk_n)
            if contender.key == "store":  # the streaming forms' smaller second source
                small = ctx.db_path(TENTH_SOURCE)
                sources[TENTH_SOURCE] = _source(ctx, contender, tenth(cfg.bulk_n), small)
        except Exception as exc:  # noqa: BLE001 - record and go on
            ctx.results.note(NAME, f"{contender.key}: building the source failed: {exc}")
    try:
        for rep in range(cfg.reps):
            for contender in rotate(contenders, rep):
                if contender.key in sources:
                    _one(ctx, rep, contender.key, sources[contender.key], sources.get(TENTH_SOURCE))
    finally:
        for path in sources.values():
            remove_db(path)
    ctx.results.note(
        NAME,
        f"one session of {cfg.bulk_n} checkpoints; peak RSS is measured above the "
        "RSS before each step, so the import's figure excludes the document it is given.",
    )


def _probe(
    ctx: Context, label: str, args: list[str], source: str, dest: str, n: int
) -> dict[str, Any]:
    """Run one probe child on ``source``'s ``n``-checkpoint session into a fresh ``dest``."""
    warm_file(source)  # the export reads it from the page cache, like the others' turns
    try:
        return run_probe(
            [*args, "--db", source, "--dest", dest, "--session", SESSION, "--n", str(n)]
        )
    except Exception as exc:  # noqa: BLE001 - record and go on
        ctx.results.note(NAME, f"{label}: {exc}")
        return {}
    finally:
        remove_db(dest)


def _one(ctx: Context, rep: int, key: str, source: str, tenth_source: str | None) -> None:
    n = ctx.config.bulk_n
    dest = ctx.db_path(f"bulk-dest-{key}")
    out = _probe(ctx, f"{key} rep {rep + 1}", ["bulk", "--contender", key], source, dest, n)
    nan = math.nan
    for case in ("export", "import"):
        seconds = float(out.get(f"{case}_s", nan))
        ctx.results.add(NAME, case, "checkpoints/s", key, n / seconds, higher_is_better=True)
        ctx.results.add(NAME, case, "peak RSS MiB", key, float(out.get(f"{case}_peak_mib", nan)))
    ctx.results.add(NAME, "document", "MiB", key, float(out.get("document_mib", nan)))
    if "import_write_s" in out:  # the floor: SQLite's part of an import alone
        ctx.results.add(
            NAME,
            "import, SQLite write only",
            "checkpoints/s",
            key,
            n / float(out["import_write_s"]),
            higher_is_better=True,
        )
    ctx.log(
        f"  bulk rep {rep + 1} {key:5} export {n / float(out.get('export_s', nan)):9.0f}/s "
        f"import {n / float(out.get('import_s', nan)):9.0f}/s"
    )
    if key == "store":
        _stream(ctx, rep, source, n, PEAK)
        if tenth_source is not None:
            _stream(ctx, rep, tenth_source, tenth(n), PEAK_TENTH)


def tenth(n: int) -> int:
    """The size of the second, smaller source for the streaming forms."""
    return max(n // 10, 1)


def _stream(ctx: Context, rep: int, source: str, n: int, metric: str) -> None:
    dest = ctx.db_path("bulk-stream-dest")
    out = _probe(ctx, f"stream rep {rep + 1} at {n}", ["stream"], source, dest, n)
    nan = math.nan
    for case in ("export", "import"):
        label = f"{case}, streamed"
        if metric == PEAK:  # throughput at the full size only
            seconds = float(out.get(f"stream_{case}_s", nan))
            rate = n / seconds
            ctx.results.add(NAME, label, "checkpoints/s", "store", rate, higher_is_better=True)
        peak = float(out.get(f"stream_{case}_peak_mib", nan))
        ctx.results.add(NAME, label, metric, "store", peak)
    ctx.log(
        f"  bulk rep {rep + 1} streamed at {n}: export "
        f"{n / float(out.get('stream_export_s', nan)):9.0f}/s import "
        f"{n / float(out.get('stream_import_s', nan)):9.0f}/s"
    )
