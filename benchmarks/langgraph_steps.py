"""LangGraph workload: a 50-step graph whose state grows by one message per step.

Real ``langgraph``: one node loops 50 times, each step appending an ``AIMessage`` of
~240 characters to an ``add_messages`` channel (so checkpoint *n* holds *n* messages).
Every contender runs the same graph on fresh databases, interleaved per repetition:

* ``breakpilot`` / ``breakpilot keep_last=5``: :class:`BreakpilotSaver` on a SQLite
  file at the store's default durability (WAL, ``synchronous=FULL``), ``invoke``;
* ``breakpilot async``: the same saver through ``ainvoke``;
* ``SqliteSaver`` / ``AsyncSqliteSaver``: LangGraph's stock savers on a connection we
  set to the same durability (WAL, ``synchronous=FULL``; the stock ``from_conn_string``
  leaves SQLite's default, which in WAL mode is also FULL);
* on PostgreSQL (``--postgres URL``): ``breakpilot pg`` against ``PostgresSaver``.

Time per step is a thread's whole ``invoke`` over its 50 steps (LangGraph's own work
included, as a user sees it). Bytes per thread: the SQLite file after
``wal_checkpoint(TRUNCATE)`` (page_count x page_size), or the PostgreSQL relations'
total size, divided by the threads. Run: ``python -m benchmarks.langgraph_steps``
(``--update`` rewrites the LangGraph section of benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

STEPS = 50
TEXT = (
    "The tool returned a long answer that the agent keeps in its state; a real "
    "conversation's messages are a few hundred characters, tool outputs more. "
)


class State(TypedDict):
    count: int
    messages: Annotated[list[AnyMessage], add_messages]


def build(checkpointer: Any) -> Any:
    def step(state: State) -> dict[str, Any]:
        n = state["count"] + 1
        return {"count": n, "messages": [AIMessage(content=f"step {n}: {TEXT}", id=f"m-{n}")]}

    def more(state: State) -> str:
        return "step" if state["count"] < STEPS else END

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
    return builder.compile(checkpointer=checkpointer)


def start() -> dict[str, Any]:
    return {"count": 0, "messages": [HumanMessage(content="go", id="m-0")]}


def sqlite_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return pages * size


def durable_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


# -- contenders: each returns (seconds per step for each thread, bytes per thread) -----


def run_threads(graph: Any, threads: int) -> list[float]:
    times = []
    for t in range(threads):
        config = {"configurable": {"thread_id": f"t-{t}"}}
        began = time.perf_counter()
        result = graph.invoke(start(), config)
        times.append((time.perf_counter() - began) / STEPS)
        assert result["count"] == STEPS
    return times


async def arun_threads(graph: Any, threads: int) -> list[float]:
    times = []
    for t in range(threads):
        config = {"configurable": {"thread_id": f"t-{t}"}}
        began = time.perf_counter()
        result = await graph.ainvoke(start(), config)
        times.append((time.perf_counter() - began) / STEPS)
        assert result["count"] == STEPS
    return times


def breakpilot(directory: Path, threads: int, keep_last: int | None = None) -> Any:
    from breakpilot_store.langgraph import BreakpilotSaver

    path = directory / f"bp-{uuid.uuid4().hex[:6]}.db"
    with BreakpilotSaver(str(path), keep_last=keep_last) as saver:
        times = run_threads(build(saver), threads)
    return times, sqlite_bytes(path) / threads


def breakpilot_async(directory: Path, threads: int) -> Any:
    from breakpilot_store.langgraph import BreakpilotSaver

    path = directory / f"bpa-{uuid.uuid4().hex[:6]}.db"

    async def main() -> list[float]:
        async with BreakpilotSaver(str(path)) as saver:
            return await arun_threads(build(saver), threads)

    times = asyncio.run(main())
    return times, sqlite_bytes(path) / threads


def sqlite_saver(directory: Path, threads: int) -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = directory / f"ss-{uuid.uuid4().hex[:6]}.db"
    conn = durable_sqlite(path)
    try:
        times = run_threads(build(SqliteSaver(conn)), threads)
    finally:
        conn.close()
    return times, sqlite_bytes(path) / threads


def async_sqlite_saver(directory: Path, threads: int) -> Any:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = directory / f"as-{uuid.uuid4().hex[:6]}.db"

    async def main() -> list[float]:
        async with aiosqlite.connect(path) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            return await arun_threads(build(AsyncSqliteSaver(conn)), threads)

    times = asyncio.run(main())
    return times, sqlite_bytes(path) / threads


def pg_schema_bytes(libpq: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0])


def breakpilot_pg(base: str, threads: int) -> Any:
    from breakpilot_store.langgraph import BreakpilotSaver
    from tests.pg_support import isolated_schema, libpq_url, with_schema

    with isolated_schema(base, "bench") as schema:
        with BreakpilotSaver(with_schema(base, schema)) as saver:
            times = run_threads(build(saver), threads)
        return times, pg_schema_bytes(libpq_url(base), schema) / threads


def postgres_saver(base: str, threads: int) -> Any:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from tests.pg_support import isolated_schema, libpq_url, with_schema

    with isolated_schema(base, "bench") as schema:
        url = libpq_url(with_schema(base, schema))
        options: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0}
        with psycopg.connect(url, row_factory=dict_row, **options) as conn:
            saver = PostgresSaver(conn)
            saver.setup()
            times = run_threads(build(saver), threads)
        return times, pg_schema_bytes(libpq_url(base), schema) / threads


def lookups(directory: Path, n: int = 1000, reads: int = 300) -> dict[str, float]:
    """``get_tuple`` by checkpoint id in a thread of ``n`` checkpoints: µs per call."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    from breakpilot_store.langgraph import BreakpilotSaver

    found = {}
    conn = durable_sqlite(directory / f"lk-{uuid.uuid4().hex[:6]}.db")
    savers = {
        "breakpilot": BreakpilotSaver(str(directory / f"lk-{uuid.uuid4().hex[:6]}.db")),
        "SqliteSaver": SqliteSaver(conn),
    }
    for name, saver in savers.items():
        config: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        ids = []
        for step in range(n):
            cp = empty_checkpoint()
            cp["channel_values"] = {"count": step}
            config = saver.put(config, cp, {"source": "loop", "step": step}, {})
            ids.append(cp["id"])
        picks = [ids[(i * 7919) % n] for i in range(reads)]
        began = time.perf_counter()
        for cid in picks:
            got = saver.get_tuple(
                {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid}}
            )
            assert got is not None and got.checkpoint["id"] == cid
        found[name] = (time.perf_counter() - began) / reads * 1e6
    savers["breakpilot"].close()  # type: ignore[attr-defined]
    conn.close()
    return found


# -- the run -----------------------------------------------------------------------------


def measure(
    contenders: dict[str, Callable[[], Any]], reps: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per contender: the median time per step of each repetition, and bytes per thread."""
    found: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in contenders}
    for rep in range(reps):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            times, size = contenders[name]()
            found[name][0].append(statistics.median(times))
            found[name][1].append(size)
            print(
                f"rep {rep + 1} {name}: {statistics.median(times) * 1e3:.2f} ms/step, "
                f"{size / 1024:.0f} KiB/thread",
                file=sys.stderr,
            )
    return found


def ratio(found: dict[str, Any], name: str, peer: str, index: int) -> str:
    ratios = [a / b for a, b in zip(found[name][index], found[peer][index], strict=True)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}]"


def report(
    found: dict[str, Any],
    pg: dict[str, Any] | None,
    reps: int,
    threads: int,
    lookup: list[dict[str, float]] | None = None,
    load: tuple[float, float] | None = None,
) -> str:
    from importlib.metadata import version

    lines = [
        "## LangGraph: a 50-step graph, state growing by a message per step",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, langgraph {version('langgraph')}, "
        f"langgraph-checkpoint-sqlite {version('langgraph-checkpoint-sqlite')}, "
        f"langgraph-checkpoint-postgres {version('langgraph-checkpoint-postgres')}",
        f"- {reps} repetitions, contenders interleaved (order reversed every other one); "
        f"{threads} threads of {STEPS} steps per contender and repetition, fresh databases."
        + (
            ""
            if load is None
            else f" Load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the "
            "end (2 cores; other work on the machine and the PostgreSQL server moves the "
            "absolute figures and widens the ranges)."
        ),
        "- Time per step: a thread's whole `invoke` / 50 (LangGraph's own work included), "
        "median of the threads; figures are the median [min–max] over repetitions, ratios "
        "per repetition. Bytes: the database after `wal_checkpoint(TRUNCATE)` (PostgreSQL: "
        "its tables' total relation size) / threads. Same durability: WAL with "
        "`synchronous=FULL` for every SQLite contender. Regenerate with "
        "`python -m benchmarks.langgraph_steps --update` (`--postgres URL` for the last rows).",
        "",
        "| contender | ms per step | × SqliteSaver (time) | KiB per thread "
        "| × SqliteSaver (bytes) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def row(name: str, data: dict[str, Any], peer: str) -> str:
        ms = [t * 1e3 for t in data[name][0]]
        kib = statistics.median(data[name][1]) / 1024
        return (
            f"| {name} | {statistics.median(ms):.2f} [{min(ms):.2f}–{max(ms):.2f}] | "
            f"{ratio(data, name, peer, 0)} | {kib:.0f} | {ratio(data, name, peer, 1)} |"
        )

    for name in found:
        lines.append(row(name, found, "SqliteSaver"))
    if pg:
        lines += [
            "",
            "On PostgreSQL (local server), against `PostgresSaver` (ratios × PostgresSaver):",
            "",
            "| contender | ms per step | × PostgresSaver (time) | KiB per thread "
            "| × PostgresSaver (bytes) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name in pg:
            lines.append(row(name, pg, "PostgresSaver"))
    if lookup:
        ours = [r["breakpilot"] for r in lookup]
        theirs = [r["SqliteSaver"] for r in lookup]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        lines += [
            "",
            "`get_tuple` by checkpoint id in a thread of 1,000 checkpoints (300 random ids; "
            "the id is the row's `name`, found through the `(session_id, name, seq)` index): "
            f"breakpilot {statistics.median(ours):.0f} µs, SqliteSaver "
            f"{statistics.median(theirs):.0f} µs per call, "
            f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}] ×.",
        ]
    return "\n".join(lines) + "\n"


BEGIN, END_MARK = "<!-- langgraph-steps:begin -->", "<!-- langgraph-steps:end -->"


def update_results(section: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    text = path.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{section}{END_MARK}\n"
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END_MARK + "\n")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--postgres", default=os.environ.get("BREAKPILOT_TEST_POSTGRES_URL"))
    parser.add_argument("--update", action="store_true", help="rewrite RESULTS.md's section")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = args.threads
        found = measure(
            {
                "SqliteSaver": lambda: sqlite_saver(d, n),
                "breakpilot": lambda: breakpilot(d, n),
                "breakpilot keep_last=5": lambda: breakpilot(d, n, keep_last=5),
                "AsyncSqliteSaver": lambda: async_sqlite_saver(d, n),
                "breakpilot async": lambda: breakpilot_async(d, n),
            },
            args.reps,
        )
        lookup = [lookups(d) for _ in range(args.reps)]
    pg = None
    if args.postgres:
        base = args.postgres
        pg = measure(
            {
                "PostgresSaver": lambda: postgres_saver(base, args.threads),
                "breakpilot pg": lambda: breakpilot_pg(base, args.threads),
            },
            args.reps,
        )
    section = report(found, pg, args.reps, args.threads, lookup, (load_start, os.getloadavg()[0]))
    print(section)
    if args.update:
        update_results(section)


if __name__ == "__main__":
    main()
