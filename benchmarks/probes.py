"""Child-process probes for the memory and bulk workloads (a clean RSS per run).

``python -m benchmarks.probes memory|bulk ...`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

from benchmarks.contenders.registry import load
from benchmarks.payload import name_for, payload_for
from benchmarks.procinfo import hwm_kib, reset_peak, rss_kib
from benchmarks.workloads.common import remove_db

MIB = 1024.0


def memory(args: argparse.Namespace) -> dict[str, Any]:
    """RSS before and after ``n`` creates in one session (after a warm-up)."""
    contender, why = load(args.contender)
    if contender is None:
        raise SystemExit(why)
    backend = contender.open(args.db, args.durability)
    writer = backend.writer("bench-memory", args.retention)
    warm = max(args.n // 10, 1_000) if args.n >= 10_000 else args.n // 5
    for step in range(1, warm + 1):
        writer.create(name_for(2, step), payload_for(2, step))
    gc.collect()
    start = rss_kib()
    t0 = time.perf_counter()
    for step in range(warm + 1, warm + args.n + 1):
        writer.create(name_for(2, step), payload_for(2, step))
    elapsed = time.perf_counter() - t0
    gc.collect()
    end = rss_kib()
    backend.close()
    return {"growth_mib": (end - start) / MIB, "start_mib": start / MIB, "seconds": elapsed}


def bulk(args: argparse.Namespace) -> dict[str, Any]:
    """Time export of ``session`` from ``db`` and its import into a fresh ``dest``."""
    contender, why = load(args.contender)
    if contender is None:
        raise SystemExit(why)
    source = contender.open(args.db, "full")
    if not contender.durable:  # (c) has no file to read: build the session here
        source.fill([(3, args.session)], args.n)
    gc.collect()
    base = rss_kib()
    reset_peak()
    t0 = time.perf_counter()
    text = source.export(args.session)
    t1 = time.perf_counter()
    export_peak = hwm_kib() - base
    source.close()
    dest = contender.open(args.dest, "full")
    gc.collect()
    base = rss_kib()
    reset_peak()
    t2 = time.perf_counter()
    count = dest.import_("imported", text)
    t3 = time.perf_counter()
    import_peak = hwm_kib() - base
    dest.close()
    if count != args.n:
        raise SystemExit(f"imported {count} checkpoints, expected {args.n}")
    result = {
        "export_s": t1 - t0,
        "import_s": t3 - t2,
        "export_peak_mib": export_peak / MIB,
        "import_peak_mib": import_peak / MIB,
        "document_mib": len(text.encode("utf-8")) / MIB / MIB,
    }
    if hasattr(dest, "write_floor"):  # (a): the SQLite part alone, into a fresh file
        floor_path = args.dest + "-floor"
        floor = contender.open(floor_path, "full")
        try:
            result["import_write_s"] = floor.write_floor("imported", text)
        finally:
            floor.close()
            remove_db(floor_path)
    return result


def main() -> None:
    """Parse, run one probe, print its JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probes")
    sub = parser.add_subparsers(dest="probe", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--contender", required=True)
    mem.add_argument("--db", required=True)
    mem.add_argument("--n", type=int, required=True)
    mem.add_argument("--durability", default="normal")
    mem.add_argument("--retention", default="default")
    blk = sub.add_parser("bulk")
    blk.add_argument("--contender", required=True)
    blk.add_argument("--db", required=True)
    blk.add_argument("--dest", required=True)
    blk.add_argument("--session", required=True)
    blk.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    result = memory(args) if args.probe == "memory" else bulk(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
