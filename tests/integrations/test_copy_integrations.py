"""``breakpilot-store copy`` carries what the integrations keep beside the checkpoints.

Found by our hostile round 5: ``copy`` (the documented way from SQLite to PostgreSQL)
moved only ``checkpoints`` rows and said "verified". On the copy the saver found no
thread (and refused to write on: "exists and is not a LangGraph thread"), an
interrupted thread lost its pending interrupt, and the ADK service found no session
(its state gone). Now each session's ``langgraph_threads``, ``langgraph_writes``,
``adk_sessions`` rows and its app and user state are copied and verified too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions

from breakpilot_store import CheckpointStore
from breakpilot_store.adk import BreakpilotSessionService
from breakpilot_store.cli.commands import cli
from breakpilot_store.langgraph import BreakpilotSaver
from breakpilot_store.openai_agents import BreakpilotSession
from tests.langgraph.graphs import tool_agent

QUESTION = {"messages": [{"role": "user", "content": "what is 6 times 7?"}]}


def _fill(path: Path) -> None:
    with CheckpointStore(path) as store:
        with BreakpilotSaver(store) as saver:
            tool_agent(saver).invoke(QUESTION, {"configurable": {"thread_id": "chat-1"}})
            config = {"configurable": {"thread_id": "chat-1", "checkpoint_ns": ""}}
            newest = saver.get_tuple(config)
            # A pending write on the newest checkpoint (as an interrupted step leaves).
            saver.put_writes(newest.config, [("__interrupt__", {"ask": "ok?"})], "task-x")

        async def others() -> None:
            async with BreakpilotSession("user-42", store=store) as session:
                await session.add_items([{"role": "user", "content": "hi"}])
            async with BreakpilotSessionService(store) as service:
                s = await service.create_session(
                    app_name="app", user_id="u", session_id="s1", state={"app:theme": "dark"}
                )
                delta = {"user:lang": "fr", "k": 1}
                await service.append_event(
                    s,
                    Event(
                        author="user", invocation_id="i", actions=EventActions(state_delta=delta)
                    ),
                )

        asyncio.run(others())


def _seen(url: str) -> dict[str, Any]:
    """What each integration reads back from the store at ``url``."""
    with CheckpointStore(url) as store:
        with BreakpilotSaver(store) as saver:
            config = {"configurable": {"thread_id": "chat-1", "checkpoint_ns": ""}}
            newest = saver.get_tuple(config)
            history = [t.config for t in saver.list(config)]

        async def others() -> tuple[Any, ...]:
            async with BreakpilotSession("user-42", store=store) as session:
                items = await session.get_items()
            async with BreakpilotSessionService(store) as service:
                got = await service.get_session(app_name="app", user_id="u", session_id="s1")
            return items, got

        items, got = asyncio.run(others())
    return {
        "thread": None if newest is None else (newest.checkpoint, newest.pending_writes),
        "history": history,
        "items": items,
        "adk": None
        if got is None
        else (got.state, [e.model_dump(mode="json") for e in got.events]),
    }


def test_a_copy_is_the_same_to_every_integration(tmp_path: Path, backend_url: str) -> None:
    source = tmp_path / "source.db"
    _fill(source)
    expected = _seen(str(source))
    assert expected["thread"] is not None and expected["thread"][1]
    assert expected["adk"] is not None and expected["adk"][0]["user:lang"] == "fr"
    for _ in range(2):  # a second run copies nothing new and changes nothing
        result = CliRunner().invoke(cli, ["--db", str(source), "copy", "--to", backend_url])
        assert result.exit_code == 0, result.output
        assert _seen(backend_url) == expected
    # The copy goes on where the source stopped: the thread and the ADK session write on.
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        tool_agent(saver).invoke(QUESTION, {"configurable": {"thread_id": "chat-1"}})
        assert len(list(saver.list({"configurable": {"thread_id": "chat-1"}}))) > len(
            expected["history"]
        )
