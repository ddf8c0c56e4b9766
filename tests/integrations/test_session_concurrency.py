"""Many writers on one database: 0 errors, 0 lost items, each writer's order kept.

8 processes (and, separately, 100 asyncio tasks) append to SDK sessions (one shared by
all, one each) and to ADK sessions (one each, sharing the app's and the user's state
rows, which every event updates). Run on every backend; results are read back through
a raw connection, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from typing import Any

import pytest

from tests.integrations.append_workers import adk_append, sdk_item, worker

PROCESSES = 8


def _items(raw: Any, session_id: str) -> list[str]:
    rows = raw.query(
        "SELECT CAST(data AS TEXT) FROM checkpoints WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    return [json.loads(text)["content"] for (text,) in rows]


def _adk_texts(raw: Any, session_id: str) -> list[str]:
    rows = raw.query(
        "SELECT CAST(data AS TEXT) FROM checkpoints WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    return [json.loads(text)["content"]["parts"][0]["text"] for (text,) in rows]


def _check_seqs_gapless(raw: Any) -> None:
    for (sid,) in raw.query("SELECT session_id FROM sessions"):
        seqs = [s for (s,) in raw.query("SELECT seq FROM checkpoints WHERE session_id = ?", (sid,))]
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), sid


def _check_adk(raw: Any, labels: list[str], n: int) -> None:
    for label in labels:
        worker = label.lstrip("wt")
        assert _adk_texts(raw, f"adk:app:u:{label}") == [f"{worker}-{k}" for k in range(n)]
        state, revision = raw.query(
            "SELECT CAST(state AS TEXT), revision FROM adk_sessions WHERE session_id = ?",
            (label,),
        )[0]
        assert (json.loads(state), revision) == ({"n": n - 1}, n)
    # Every writer's last delta survived in the shared rows: no lost update.
    (user_state,) = raw.query("SELECT CAST(state AS TEXT) FROM adk_user_states")[0]
    (app_state,) = raw.query("SELECT CAST(state AS TEXT) FROM adk_app_states")[0]
    expected = {f"last_{label}": n - 1 for label in labels}
    assert json.loads(user_state) == expected
    assert json.loads(app_state) == expected


def test_processes_append(backend_url: str, raw: Any) -> None:
    pytest.importorskip("agents")
    pytest.importorskip("google.adk")
    n = 12 if "://" not in backend_url else 6
    import breakpilot_store.adk  # noqa: F401 - imported once, before the fork
    import breakpilot_store.openai_agents  # noqa: F401

    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    procs = [ctx.Process(target=worker, args=(backend_url, w, n, go)) for w in range(PROCESSES)]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(300)
    # Exit code = the number of failed calls (their errors are on stderr).
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    db = raw()
    shared = _items(db, "oai:shared")
    assert len(shared) == PROCESSES * n
    for w in range(PROCESSES):
        mine = [text for text in shared if text.startswith(f"{w}-")]
        assert mine == [f"{w}-{k}" for k in range(n)]  # each writer's order kept
        assert _items(db, f"oai:w{w}") == [f"{w}-{k}" for k in range(n)]
    _check_adk(db, [f"w{w}" for w in range(PROCESSES)], n)
    _check_seqs_gapless(db)


def test_hundred_tasks_append(backend_url: str, raw: Any) -> None:
    pytest.importorskip("agents")
    pytest.importorskip("google.adk")
    from breakpilot_store import AsyncCheckpointStore
    from breakpilot_store.adk import BreakpilotSessionService
    from breakpilot_store.openai_agents import BreakpilotSession

    tasks, n = 100, 2

    async def run() -> list[Any]:
        async with AsyncCheckpointStore(backend_url) as store:
            shared = BreakpilotSession("shared", store=store)
            service = BreakpilotSessionService(store)

            async def sdk_task(t: int) -> None:
                own = BreakpilotSession(f"t{t}", store=store)
                for k in range(n):
                    await shared.add_items([sdk_item(t, k)])
                    await own.add_items([sdk_item(t, k)])

            return await asyncio.gather(
                *(sdk_task(t) for t in range(tasks)),
                *(adk_append(service, t, n, f"t{t}") for t in range(tasks)),
                return_exceptions=True,
            )

    results = asyncio.run(run())
    assert [r for r in results if r not in (None, 0)] == []
    db = raw()
    shared = _items(db, "oai:shared")
    assert len(shared) == tasks * n
    for t in range(tasks):
        assert [x for x in shared if x.startswith(f"{t}-")] == [f"{t}-{k}" for k in range(n)]
        assert _items(db, f"oai:t{t}") == [f"{t}-{k}" for k in range(n)]
    _check_adk(db, [f"t{t}" for t in range(tasks)], n)
    _check_seqs_gapless(db)
