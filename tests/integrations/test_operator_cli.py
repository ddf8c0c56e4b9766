"""What an operator sees of SDK and ADK sessions through ``breakpilot-store``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Run


@pytest.fixture
def run() -> Run:
    return Run()


def fill_framework_sessions(path: Path, adk_session: str = "s") -> None:
    """An SDK conversation ``oai:user-42`` and an ADK session ``adk:app:u:<adk_session>``."""
    pytest.importorskip("agents")
    pytest.importorskip("google.adk")
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    from breakpilot_store import AsyncCheckpointStore
    from breakpilot_store.adk import BreakpilotSessionService
    from breakpilot_store.openai_agents import BreakpilotSession

    async def fill() -> None:
        async with AsyncCheckpointStore(path) as store:
            sdk = BreakpilotSession("user-42", store=store)
            await sdk.add_items(
                [{"role": "user", "content": "Bonjour"}, {"role": "assistant", "content": "Salut"}]
            )
            service = BreakpilotSessionService(store)
            session = await service.create_session(
                app_name="app", user_id="u", session_id=adk_session, state={"user:lang": "fr"}
            )
            await service.append_event(
                session,
                Event(
                    id="e1",
                    invocation_id="inv",
                    author="user",
                    timestamp=time.time(),
                    content=types.Content(role="user", parts=[types.Part(text="hello")]),
                    actions=EventActions(state_delta={"k": 1}),
                ),
            )

    asyncio.run(fill())


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "agents.db"
    fill_framework_sessions(path)
    return path


def test_sessions_list_show_export(run: Run, filled: Path) -> None:
    out = run("--db", filled, "--json", "sessions").output
    sessions = {s["session_id"]: s for s in json.loads(out)}
    assert set(sessions) == {"oai:user-42", "adk:app:u:s"}
    assert sessions["oai:user-42"]["checkpoints"] == 2

    listed = json.loads(run("--db", filled, "--json", "list", "oai:user-42").output)
    assert sorted(c["name"] for c in listed) == ["assistant", "user"]

    shown = json.loads(run("--db", filled, "--json", "show", "adk:app:u:s:1").output)
    assert shown["data"]["content"]["parts"][0]["text"] == "hello"
    assert shown["data"]["actions"]["state_delta"] == {"k": 1}

    exported = json.loads(run("--db", filled, "export", "oai:user-42").output)
    assert [e["data"] for e in exported] == [
        {"role": "user", "content": "Bonjour"},
        {"role": "assistant", "content": "Salut"},
    ]


def test_cli_delete_removes_the_adk_session(run: Run, filled: Path) -> None:
    from breakpilot_store.adk import BreakpilotSessionService

    result = run("--db", filled, "delete", "adk:app:u:s", "--yes")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(filled) as raw:
        assert raw.execute("SELECT count(*) FROM adk_sessions").fetchone() == (0,)

    async def get() -> object:
        service = BreakpilotSessionService(filled)
        try:
            return await service.get_session(app_name="app", user_id="u", session_id="s")
        finally:
            await service.close()

    assert asyncio.run(get()) is None
