"""BreakpilotSession behaves exactly as the SDK's own SQLiteSession.

Every scenario runs against both, each on a fresh SQLite file, and the results (every
``get_items`` and ``pop_item`` answer, in order) must be identical. The operator's view
of our file is checked through a raw sqlite3 connection.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents")

from agents.memory import SQLiteSession  # noqa: E402

from breakpilot_store import CheckpointStore  # noqa: E402
from breakpilot_store.openai_agents import BreakpilotSession  # noqa: E402

Op = tuple[Any, ...]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str, i: int = 0) -> dict[str, Any]:
    return {
        "id": f"msg_{i}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


CALL = {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": 1}'}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "42"}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "…"}]}

BASIC = [user("a"), assistant("b", 1), CALL, OUTPUT, REASONING]

SCENARIOS: dict[str, list[Op]] = {
    "empty": [
        ("get", None),
        ("get", 0),
        ("get", 1),
        ("get", 10),
        ("get", -1),
        ("pop",),
        ("clear",),
        ("get", None),
        ("add", []),
        ("get", None),
    ],
    "limits": [
        ("add", BASIC),
        *[("get", n) for n in (None, 0, 1, 2, 4, 5, 6, 100, -1, -5)],
    ],
    "pop_until_empty": [
        ("add", BASIC[:3]),
        ("pop",),
        ("get", None),
        ("pop",),
        ("pop",),
        ("pop",),
        ("pop",),
        ("get", None),
        ("add", [user("again")]),
        ("get", None),
    ],
    "clear_then_continue": [
        ("add", BASIC),
        ("clear",),
        ("get", None),
        ("pop",),
        ("add", [user("x"), user("y")]),
        ("get", 1),
        ("get", None),
    ],
    "unicode": [
        ("add", [user("héllo wörld ✓ 日本語 עברית 🙂"), user("nul\x00inside"), user("")]),
        ("add", [{"role": "user", "content": [{"type": "input_text", "text": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"}]}]),
        ("get", None),
        ("get", 2),
        ("pop",),
    ],
    "large": [
        ("add", [user("x" * 1_000_000)]),
        ("add", [user(f"m{i}") for i in range(500)]),
        ("get", 3),
        ("pop",),
        ("get", None),
    ],
    "values": [
        (
            "add",
            [
                {
                    "type": "custom",
                    "n": [0, -1, 2**63 - 1, 1.5, -0.25, 1e300, True, False, None],
                    "nested": {"a": {"b": {"c": [[], {}]}}},
                }
            ],
        ),
        ("get", None),
    ],
    "interleaved": [
        ("add", [user("1")]),
        ("add", [assistant("2")]),
        ("pop",),
        ("add", [assistant("2b"), user("3")]),
        ("get", 2),
        ("pop",),
        ("pop",),
        ("add", [user("4")]),
        ("get", None),
    ],
    "settings_limit": [
        ("settings", 2),
        ("add", BASIC),
        ("get", None),
        ("get", 4),
        ("get", 0),
    ],
    "two_sessions_one_file": [
        ("add", [user("s1")]),
        ("other", "add", [user("s2-a"), user("s2-b")]),
        ("get", None),
        ("other", "get", None),
        ("other", "pop"),
        ("other", "clear"),
        ("get", None),
    ],
    "reopen": [
        ("add", BASIC[:2]),
        ("reopen",),
        ("get", None),
        ("pop",),
        ("reopen",),
        ("get", None),
    ],
}

Factory = Callable[[str, Path, Any], Any]


def sqlite_reference(session_id: str, path: Path, settings: Any) -> Any:
    return SQLiteSession(session_id, str(path / "reference.db"), session_settings=settings)


def breakpilot(session_id: str, path: Path, settings: Any) -> Any:
    return BreakpilotSession(session_id, store=path / "ours.db", session_settings=settings)


async def close(session: Any) -> None:
    if isinstance(session, BreakpilotSession):
        await session.aclose()
    else:
        session.close()


async def play(factory: Factory, ops: list[Op], path: Path) -> list[Any]:
    settings = None
    sessions: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in sessions:
            sessions[name] = factory(name, path, settings)
        return sessions[name]

    out: list[Any] = []
    for op in ops:
        target = "main"
        if op[0] == "other":
            target, op = "other", op[1:]
        session = None if op[0] in ("settings", "reopen") else get(target)
        match op:
            case ("settings", n):
                settings = {"limit": n}
            case ("reopen",):
                for s in sessions.values():
                    await close(s)
                sessions.clear()
            case ("add", items):
                # The SDK hands its session copies; so do we, so no test can pass by aliasing.
                out.append(("add", await session.add_items(json.loads(json.dumps(items)))))
            case ("get", n):
                out.append(("get", n, await session.get_items(n)))
            case ("pop",):
                out.append(("pop", await session.pop_item()))
            case ("clear",):
                out.append(("clear", await session.clear_session()))
    for s in sessions.values():
        await close(s)
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_results_as_sqlite_session(name: str, backend_url: str, tmp_path: Path) -> None:
    """Ours on every backend (SQLite file, PostgreSQL) against the SDK's on SQLite."""
    ops = SCENARIOS[name]
    reference = asyncio.run(play(sqlite_reference, ops, tmp_path))

    def ours_on_backend(session_id: str, path: Path, settings: Any) -> Any:
        return BreakpilotSession(session_id, store=backend_url, session_settings=settings)

    ours = asyncio.run(play(ours_on_backend, ops, tmp_path))
    assert ours == reference
    # The scenario did something observable (guards against two empty answers).
    assert any(entry[0] in ("get", "pop") for entry in reference)


def test_concurrent_appends_same_as_reference(tmp_path: Path) -> None:
    """50 tasks append 3 items each to one session: all kept, each task's run contiguous."""

    async def run(factory: Factory) -> list[Any]:
        session = factory("busy", tmp_path, None)
        await asyncio.gather(
            *(session.add_items([user(f"{t}-{k}") for k in range(3)]) for t in range(50))
        )
        items = await session.get_items()
        await close(session)
        return items

    for factory in (sqlite_reference, breakpilot):
        items = asyncio.run(run(factory))
        texts = [item["content"] for item in items]
        assert sorted(texts) == sorted(f"{t}-{k}" for t in range(50) for k in range(3))
        # One add_items is one transaction: its items are adjacent and in order.
        for start in range(0, 150, 3):
            task = texts[start].split("-")[0]
            assert texts[start : start + 3] == [f"{task}-{k}" for k in range(3)]


def test_operator_reads_items_with_json_extract(tmp_path: Path) -> None:
    path = tmp_path / "ours.db"

    async def run() -> None:
        async with BreakpilotSession("user-42", store=path) as session:
            await session.add_items(BASIC)
            await session.pop_item()
            await session.add_items([user("après")])

    asyncio.run(run())
    raw = sqlite3.connect(path)
    rows = raw.execute(
        "SELECT seq, name, json_extract(data, '$.call_id'), "
        "json_extract(data, '$.content[0].text') "
        "FROM checkpoints WHERE session_id = 'oai:user-42' ORDER BY seq"
    ).fetchall()
    raw.close()
    # seq 5 was popped and is never handed out again.
    assert rows == [
        (1, "user", None, None),
        (2, "assistant", None, "b"),
        (3, "function_call", "c1", None),
        (4, "function_call_output", "c1", None),
        (6, "user", None, None),
    ]


def test_store_argument_kinds_share_one_database(tmp_path: Path) -> None:
    from breakpilot_store import AsyncCheckpointStore

    path = tmp_path / "shared.db"

    async def run() -> list[Any]:
        with CheckpointStore(path) as sync_store:
            async with BreakpilotSession("a", store=sync_store) as session:
                await session.add_items([user("via sync")])
            assert not sync_store.closed  # a store passed in stays the caller's
        async with AsyncCheckpointStore(path) as astore:
            await BreakpilotSession("a", store=astore).add_items([user("via async")])
        async with BreakpilotSession("a", store=str(path)) as session:
            return await session.get_items()

    assert [i["content"] for i in asyncio.run(run())] == ["via sync", "via async"]
    # Closing each session stopped whatever it started (the async front's threads).
    import threading

    assert not [t for t in threading.enumerate() if t.name == "breakpilot-store-writer"]
