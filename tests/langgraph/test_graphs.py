"""Real LangGraph graphs on BreakpilotSaver, on every backend."""

from __future__ import annotations

import asyncio
import decimal
from typing import Any

import pydantic
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from breakpilot_store import CheckpointStore
from breakpilot_store.langgraph import BreakpilotSaver, UnknownValueTypeError
from tests.langgraph.graphs import nested_graph, review_graph, tool_agent


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def kinds(messages: list[Any]) -> list[tuple[str, str]]:
    return [(type(m).__name__, str(m.content)) for m in messages]


EXPECTED = [
    ("HumanMessage", "what is 6 times 7?"),
    ("AIMessage", ""),
    ("ToolMessage", "42"),
    ("AIMessage", "The answer is 42."),
]


def test_tool_agent_invoke_and_ainvoke_on_one_saver(backend_url: str) -> None:
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = tool_agent(saver)
        question = {"messages": [HumanMessage(content="what is 6 times 7?")]}
        result = graph.invoke(question, config("sync"))
        assert kinds(result["messages"]) == EXPECTED
        result = asyncio.run(graph.ainvoke(question, config("async")))
        assert kinds(result["messages"]) == EXPECTED
        # A second event loop (a script calling asyncio.run again) with the same saver.
        result = asyncio.run(graph.ainvoke(question, config("async-2")))
        assert kinds(result["messages"]) == EXPECTED
        # Each thread reads back through the other front, as typed messages.
        for thread in ("sync", "async"):
            state = graph.get_state(config(thread))
            messages = state.values["messages"]
            assert kinds(messages) == EXPECTED
            assert isinstance(messages[2], ToolMessage) and messages[2].tool_call_id == "call-1"
            assert messages[1].tool_calls[0]["args"] == {"a": 6, "b": 7}
            assert state.next == ()
        # A second turn continues the conversation on the stored state.
        result = graph.invoke({"messages": [HumanMessage(content="again?")]}, config("sync"))
        assert len(result["messages"]) == 8


def test_a_script_calling_asyncio_run_again_and_again_leaves_no_threads(tmp_path) -> None:
    # Found when the async open stopped keeping each event loop referenced: the saver
    # kept its fronts by loop in a WeakKeyDictionary, so a front whose loop was
    # collected dropped out unclosed and its writer thread ran until the process ended
    # (19 of 20 after close()); before that, one writer thread per asyncio.run piled
    # up until close(). Now the fronts of ended loops close when the next loop comes.
    import threading

    def writers() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "breakpilot-store-writer")

    before = writers()
    graph_saver = BreakpilotSaver(str(tmp_path / "runs.db"))
    graph = tool_agent(graph_saver)
    question = {"messages": [HumanMessage(content="what is 6 times 7?")]}
    for run in range(6):
        result = asyncio.run(graph.ainvoke(question, config(f"run-{run}")))
        assert kinds(result["messages"]) == EXPECTED
        assert writers() - before <= 1  # this run's front only
    graph_saver.close()
    assert writers() == before
    with CheckpointStore(str(tmp_path / "runs.db")) as store:
        assert len(store.list_sessions()) == 6


def test_interrupt_and_resume_with_command(backend_url: str) -> None:
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = review_graph(saver)
        first = graph.invoke({"draft": "essay", "verdict": ""}, config("r"))
        assert first["__interrupt__"][0].value == {
            "question": "approve?",
            "draft": "draft of essay",
        }
        state = graph.get_state(config("r"))
        assert state.next == ("review",)
        assert state.tasks[0].interrupts[0].value["question"] == "approve?"
    # A new saver (a restarted process) resumes the same thread.
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = review_graph(saver)
        done = graph.invoke(Command(resume="approved"), config("r"))
        assert done == {"draft": "draft of essay", "verdict": "approved"}
        assert graph.get_state(config("r")).next == ()


def test_history_time_travel_and_fork(backend_url: str) -> None:
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = tool_agent(saver)
        graph.invoke({"messages": [HumanMessage(content="what is 6 times 7?")]}, config("t"))
        history = list(graph.get_state_history(config("t")))
        # input, agent, tools, agent: newest first, each one's parent the next one.
        assert [len(s.values.get("messages", [])) for s in history] == [4, 3, 2, 1, 0]
        for newer, older in zip(history, history[1:], strict=False):
            assert (
                newer.parent_config["configurable"]["checkpoint_id"]
                == (older.config["configurable"]["checkpoint_id"])
            )
        # Time travel: replay from the checkpoint after the tool ran.
        after_tool = next(s for s in history if len(s.values.get("messages", [])) == 3)
        replayed = graph.invoke(None, after_tool.config)
        assert kinds(replayed["messages"]) == EXPECTED
        # Fork: rewrite the tool's answer at that point and run on from there.
        tool_msg = after_tool.values["messages"][2]
        forked = graph.update_state(
            after_tool.config,
            {
                "messages": [
                    ToolMessage(content="41", tool_call_id=tool_msg.tool_call_id, id=tool_msg.id)
                ]
            },
        )
        result = graph.invoke(None, forked)
        assert kinds(result["messages"])[-1] == ("AIMessage", "The answer is 41.")
        assert graph.get_state(config("t")).values["messages"][-1].content == "The answer is 41."
        sources = [s.metadata["source"] for s in graph.get_state_history(config("t"))]
        assert "update" in sources


def test_subgraph_checkpoints_in_their_namespace(backend_url: str, raw: Any) -> None:
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = nested_graph(saver)
        first = graph.invoke({"messages": [HumanMessage(content="go")]}, config("n"))
        assert first["__interrupt__"][0].value == "inner question"
        state = graph.get_state(config("n"), subgraphs=True)
        child = state.tasks[0].state
        assert child is not None and child.config["configurable"]["checkpoint_ns"].startswith(
            "child:"
        )
        done = graph.invoke(Command(resume="yes"), config("n"))
        assert kinds(done["messages"]) == [
            ("HumanMessage", "go"),
            ("AIMessage", "inner got yes"),
            ("AIMessage", "outer done"),
        ]
    rows = raw().query(
        "SELECT session_id, thread_id, checkpoint_ns FROM langgraph_threads ORDER BY session_id"
    )
    assert rows[0] == ("n", "n", "")
    assert len(rows) == 2 and rows[1][1] == "n" and rows[1][2].startswith("child:")
    assert rows[1][0] == f"n|{rows[1][2]}"


def test_saver_over_a_store_passed_in(backend_url: str) -> None:
    store = CheckpointStore(backend_url)
    try:
        saver = BreakpilotSaver(store, keep_last=3)
        graph = tool_agent(saver)
        graph.invoke({"messages": [HumanMessage(content="what is 6 times 7?")]}, config("k"))
        saver.close()  # the store was passed in: it stays open
        assert [c.name for c in store.list_checkpoints("k")] == [
            t.config["configurable"]["checkpoint_id"]
            for t in reversed(list(saver.list(config("k"))))
        ]
        assert store.count("k") == 3
        assert isinstance(graph.get_state(config("k")).values["messages"][-1], AIMessage)
    finally:
        store.close()


class Item(pydantic.BaseModel):
    name: str
    price: decimal.Decimal


class Basket(TypedDict):
    items: list[Item]
    note: str


def test_state_schema_classes_are_allowed_by_langgraph_s_allowlist(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In its strict mode LangGraph hands the saver the classes its state names."""
    from langgraph._internal import _serde

    # LANGGRAPH_STRICT_MSGPACK=true, as read when langgraph is imported.
    monkeypatch.setattr(_serde, "STRICT_MSGPACK_ENABLED", True)

    def add(state: Basket) -> dict[str, Any]:
        return {"items": [*state["items"], Item(name="tea", price=decimal.Decimal("2.50"))]}

    builder = StateGraph(Basket)
    builder.add_node("add", add)
    builder.add_edge(START, "add")
    with BreakpilotSaver.from_conn_string(backend_url) as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"items": [], "note": "n"}, config("basket"))
        items = graph.get_state(config("basket")).values["items"]
        assert items == [Item(name="tea", price=decimal.Decimal("2.50"))]
        # The saver itself was not widened: its allowlist is the graph's alone.
        with pytest.raises(UnknownValueTypeError):
            saver.get_tuple(config("basket"))
