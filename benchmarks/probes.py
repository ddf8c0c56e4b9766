"""Child-process probes for the memory and bulk workloads (a clean RSS per run).

``python -m benchmarks.probes memory|bulk ...`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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


def _streamed(store: Any, session: str, path: str) -> tuple[float, float]:
    """Export ``session`` to ``path`` in pieces, as ``breakpilot-store export -o`` does.

    Returns:
        Seconds, and the peak RSS above the start in MiB.
    """
    gc.collect()
    base = rss_kib()
    reset_peak()
    t0 = time.perf_counter()
    with open(path, "wb") as out:
        for piece in store.export_bytes(session):
            out.write(piece)
    return time.perf_counter() - t0, (hwm_kib() - base) / MIB


def _stream_in(store: Any, session: str, path: str) -> tuple[int, float, float]:
    """Import from ``path`` read in pieces, as ``breakpilot-store import`` does.

    Returns:
        Checkpoints written, seconds, and the peak RSS above the start in MiB.
    """
    from breakpilot_store.core.document import read_document

    gc.collect()
    base = rss_kib()
    reset_peak()
    t0 = time.perf_counter()
    with open(path, "rb") as src:
        written = store.import_checkpoints(session, read_document(src))
    return written, time.perf_counter() - t0, (hwm_kib() - base) / MIB


def stream(args: argparse.Namespace) -> dict[str, Any]:
    """The streaming forms (the CLI's export and import) of one ``n``-checkpoint session.

    Its own process per size, so that every size starts from the same state: constant
    memory means that a session ten times larger does not raise these peaks.
    """
    from breakpilot_store import CheckpointStore

    doc = args.dest + ".json"
    result: dict[str, Any] = {}
    try:
        with CheckpointStore(args.db) as source:
            result["stream_export_s"], result["stream_export_peak_mib"] = _streamed(
                source, args.session, doc
            )
        with CheckpointStore(args.dest) as dest:
            written, seconds, peak = _stream_in(dest, "imported", doc)
        result["stream_import_s"], result["stream_import_peak_mib"] = seconds, peak
        if written != args.n:
            raise SystemExit(f"streamed {written} checkpoints in, expected {args.n}")
    finally:
        if os.path.exists(doc):
            os.remove(doc)
    return result


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
    stm = sub.add_parser("stream")
    stm.add_argument("--db", required=True)
    stm.add_argument("--dest", required=True)
    stm.add_argument("--session", required=True)
    stm.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    probes = {"memory": memory, "bulk": bulk, "stream": stream}
    result = probes[args.probe](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
