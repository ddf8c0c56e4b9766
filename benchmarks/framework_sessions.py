"""The framework sessions against the frameworks' own SQL sessions, in the same run.

``python -m benchmarks.framework_sessions [--n 300] [--reps 3]``: per-call latency (p50,
µs) of ``add_items`` (one item) + ``get_items(limit=20)`` for the OpenAI Agents SDK
(ours vs ``SQLiteSession``) and of ``append_event`` + ``get_session(num_recent_events=20)``
for ADK (ours vs ``DatabaseSessionService`` on aiosqlite), each on a fresh SQLite file,
interleaved per repetition; prints the ratios ours/theirs (below 1: ours is faster).
Durability as each ships it: ours ``synchronous=FULL``; SQLiteSession and aiosqlite use
SQLite's default (``FULL`` in rollback mode, SQLiteSession switches to WAL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


async def _timed(n: int, step: Callable[[int], Awaitable[Any]]) -> float:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await step(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


async def sdk(kind: str, path: Path, n: int) -> tuple[float, float]:
    from agents.memory import SQLiteSession

    from breakpilot_store.openai_agents import BreakpilotSession

    session: Any = (
        BreakpilotSession("bench", store=path)
        if kind == "ours"
        else SQLiteSession("bench", str(path))
    )
    item = {"role": "user", "content": "x" * 500}
    add = await _timed(n, lambda i: session.add_items([dict(item, n=i)]))
    get = await _timed(n, lambda i: session.get_items(20))
    if kind == "ours":
        await session.aclose()
    else:
        session.close()
    return add, get


async def adk(kind: str, path: Path, n: int) -> tuple[float, float]:
    from google.adk.events.event import Event
    from google.adk.sessions import DatabaseSessionService
    from google.genai import types

    from breakpilot_store.adk import BreakpilotSessionService

    service: Any = (
        BreakpilotSessionService(path)
        if kind == "ours"
        else DatabaseSessionService(f"sqlite+aiosqlite:///{path}")
    )
    session = await service.create_session(app_name="a", user_id="u", session_id="s")

    def event(i: int) -> Event:
        return Event(
            id=f"e{i}",
            invocation_id="inv",
            author="user",
            timestamp=time.time(),
            content=types.Content(role="user", parts=[types.Part(text="x" * 500)]),
        )

    append = await _timed(n, lambda i: service.append_event(session, event(i)))
    config = {"num_recent_events": 20}
    from google.adk.sessions.base_session_service import GetSessionConfig

    get = await _timed(
        n,
        lambda i: service.get_session(
            app_name="a", user_id="u", session_id="s", config=GetSessionConfig(**config)
        ),
    )
    await service.close()
    return append, get


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for framework, bench in (("sdk", sdk), ("adk", adk)):
                for kind in ("ours", "theirs"):
                    path = Path(tmp) / f"{framework}-{kind}-{rep}.db"
                    rows.setdefault(f"{framework}-{kind}", []).append(
                        asyncio.run(bench(kind, path, args.n))
                    )
    for framework, calls in (("sdk", ("add_items", "get_items")), ("adk", ("append", "get"))):
        ours, theirs = rows[f"{framework}-ours"], rows[f"{framework}-theirs"]
        for k, call in enumerate(calls):
            o = statistics.median(r[k] for r in ours)
            t = statistics.median(r[k] for r in theirs)
            ratios = [a[k] / b[k] for a, b in zip(ours, theirs, strict=True)]
            print(
                f"{framework} {call:9s} ours {o:8.0f} µs  theirs {t:8.0f} µs  "
                f"ratio {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
            )


if __name__ == "__main__":
    main()
