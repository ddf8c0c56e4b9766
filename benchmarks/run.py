"""Command line: ``python -m benchmarks`` or ``python benchmarks/run.py``.

Examples (from the repository root)::

    python -m benchmarks --quick                       # smoke run, < 60 s
    python -m benchmarks --out benchmarks/RESULTS.md   # the full run for the report
    python -m benchmarks --quick --only create --contenders store,a
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package from the repo root,
    # not its modules from benchmarks/ itself (sys.path[0] is the script's directory)
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.config import FULL, QUICK  # noqa: E402
from benchmarks.contenders import ORDER, load_contenders  # noqa: E402
from benchmarks.report import render  # noqa: E402
from benchmarks.stats import Results  # noqa: E402
from benchmarks.targets import TARGETS  # noqa: E402
from benchmarks.workloads import WORKLOADS, Context  # noqa: E402


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}"
            )
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="breakpilot_store benchmarks against raw sqlite3 (a), LangGraph's "
        "SqliteSaver (b) and the seed in memory (c).",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (< 60 s)")
    parser.add_argument(
        "--only",
        type=_csv(tuple(WORKLOADS)),
        action="extend",
        metavar="WORKLOAD",
        help=f"run only these (repeatable or comma-separated): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--contenders",
        type=_csv(ORDER),
        metavar="KEYS",
        default=list(ORDER),
        help=f"comma-separated subset of {','.join(ORDER)} (default: all available)",
    )
    parser.add_argument("--reps", type=int, help="override the number of repetitions")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the report here (default: benchmarks/RESULTS.md for a full run of "
        "every workload, nowhere for --quick or --only)",
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory for the databases")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads, print the Targets, write the report."""
    args = parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.reps:
        config = type(config)(**{**config.__dict__, "reps": args.reps})
    selected = args.only or list(WORKLOADS)
    contenders, skipped = load_contenders(tuple(args.contenders))
    for line in skipped:
        print(f"skipping {line}", file=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="breakpilot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = Results()
    ctx = Context(config, contenders, results, workdir)
    started = time.perf_counter()
    try:
        for name in selected:
            t0 = time.perf_counter()
            print(f"== {name}", file=sys.stderr)
            WORKLOADS[name](ctx)
            print(f"== {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"databases left in {workdir}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    text = render(results, config, contenders, skipped, selected, elapsed)
    out = args.out
    if out is None and not args.quick and args.only is None:
        out = Path(__file__).resolve().parent / "RESULTS.md"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    print(f"\nTargets ({'quick' if config.quick else 'full'} run, {elapsed:.0f} s):")
    judged = 0
    for target in TARGETS:
        measured, status = target.judge(results)
        if status != "n/a":
            judged += 1
            print(f"  {status:4}  {target.label}: {measured} (target {target.threshold})")
    if not judged:
        print("  none judged: no store figures (or not the workloads and comparators needed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
