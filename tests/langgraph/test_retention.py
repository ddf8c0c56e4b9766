"""keep_last: the N newest checkpoints per thread and namespace, in the put's transaction."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.graph import END, START, StateGraph

from breakpilot_store.langgraph import BreakpilotSaver
from tests.langgraph.graphs import counting_graph, start_count


def put_chain(saver: BreakpilotSaver, thread: str, ns: str, n: int) -> list[dict[str, Any]]:
    configs = []
    config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    for step in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        cp["channel_values"] = {"step": step}
        cp["channel_versions"] = {"step": step + 1}
        config = saver.put(config, cp, {"source": "loop", "step": step}, {"step": step + 1})
        saver.put_writes(config, [("step", step + 100)], f"task-{step}")
        configs.append(config)
    return configs


def test_keep_last_keeps_the_newest_per_namespace_with_their_writes(
    backend_url: str, raw: Any
) -> None:
    with BreakpilotSaver(backend_url, keep_last=3) as saver:
        root = put_chain(saver, "t", "", 7)
        put_chain(saver, "t", "child:1", 2)
        kept = [
            t.config for t in saver.list({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
        ]
        assert [c["configurable"]["checkpoint_id"] for c in kept] == [
            c["configurable"]["checkpoint_id"] for c in reversed(root[-3:])
        ]
        assert (
            len(list(saver.list({"configurable": {"thread_id": "t", "checkpoint_ns": "child:1"}})))
            == 2
        )
        for config in root[-3:]:
            tup = saver.get_tuple(config)
            assert tup.pending_writes == [
                (tup.pending_writes[0][0], "step", tup.checkpoint["channel_values"]["step"] + 100)
            ]
        # The oldest kept reports its parent, which is gone: get_tuple says absent.
        oldest = saver.get_tuple(root[-3])
        assert (
            oldest.parent_config["configurable"]["checkpoint_id"]
            == root[-4]["configurable"]["checkpoint_id"]
        )
        assert saver.get_tuple(oldest.parent_config) is None
        assert saver.get_tuple(root[0]) is None
    db = raw()
    # Nothing of the removed checkpoints is left, rows or writes; the counter went on.
    assert db.scalar("SELECT count(*) FROM checkpoints WHERE session_id = 't'") == 3
    assert db.scalar("SELECT count(*) FROM langgraph_writes WHERE session_id = 't'") == 3
    assert db.query("SELECT seq FROM checkpoints WHERE session_id = 't' ORDER BY seq") == [
        (5,),
        (6,),
        (7,),
    ]
    assert db.counters()["t"] == (7, 3)


def test_keep_last_with_a_real_graph_resumes_and_is_bounded(backend_url: str, raw: Any) -> None:
    config = {"configurable": {"thread_id": "g"}}
    with BreakpilotSaver(backend_url, keep_last=2) as saver:
        graph = counting_graph(saver, steps=12)
        result = graph.invoke(start_count(), config)
        assert result["count"] == 12
        assert len(list(graph.get_state_history(config))) == 2
        # A second run starts from the kept state: the first run's messages are there
        # (the steps' messages have fixed ids, so add_messages replaces them in place).
        more = graph.invoke({"count": 6, "messages": []}, config)
        assert more["count"] == 12 and more["messages"][0].content == "count"
        assert [m.content for m in more["messages"]] == [m.content for m in result["messages"]]
    assert raw().scalar("SELECT count(*) FROM checkpoints WHERE session_id = 'g'") == 2


def test_default_keeps_everything(backend_url: str) -> None:
    with BreakpilotSaver(backend_url) as saver:
        put_chain(saver, "all", "", 6)
        assert len(list(saver.list({"configurable": {"thread_id": "all"}}))) == 6


def _delta_reducer(state: Any, writes: Any) -> list:
    return list(state or []) + [x for w in writes for x in w]


class _DeltaState3(TypedDict):
    log: Annotated[list, DeltaChannel(_delta_reducer, snapshot_frequency=3)]
    total: int


class _DeltaState100(TypedDict):
    log: Annotated[list, DeltaChannel(_delta_reducer, snapshot_frequency=100)]
    total: int


def _delta_graph(saver: Any, frequency: int) -> Any:
    def node(state: Any) -> dict[str, Any]:
        return {"log": [f"n{len(state['log'])}"], "total": state.get("total", 0) + 1}

    builder = StateGraph(_DeltaState3 if frequency == 3 else _DeltaState100)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("frequency", [3, 100])
def test_retention_keeps_what_delta_channels_are_rebuilt_from(
    backend_url: str, raw: Any, frequency: int
) -> None:
    """Found by our hostile round 5: ``keep_last`` and ``prune`` kept the N newest rows
    only, so a ``DeltaChannel`` (rebuilt from ancestors' writes back to its last
    snapshot) silently read as almost empty: ['n'] where InMemorySaver has the whole
    log. Each checkpoint kept now keeps the ancestors its delta channels need; with
    snapshots every 3 updates the old rows still go."""
    from langgraph.checkpoint.memory import InMemorySaver

    def run(saver: Any, thread: str, prune: bool = False) -> Any:
        graph = _delta_graph(saver, frequency)
        config = {"configurable": {"thread_id": thread}}
        for i in range(12):
            graph.invoke({"log": [f"in{i}"], "total": 0}, config)
        if prune:
            saver.prune([thread])
        return graph.get_state(config).values

    expected = run(InMemorySaver(), "t")
    assert len(expected["log"]) == 24
    for thread, kwargs, prune in (("kept", {"keep_last": 2}, False), ("pruned", {}, True)):
        with BreakpilotSaver(backend_url, **kwargs) as saver:
            assert run(saver, thread, prune) == expected, thread
        count = "SELECT count(*) FROM checkpoints WHERE session_id = ?"
        held = raw().query(count, (thread,))[0][0]
        # 12 invokes x 3 checkpoints: a snapshot every 3 updates lets most go.
        assert held < 20 if frequency == 3 else held == 36, (thread, held)


class _Log(TypedDict):
    log: Annotated[list[str], lambda a, b: a + b]


def _nested_graph(saver: BreakpilotSaver) -> Any:
    inner = StateGraph(_Log)
    inner.add_node("a", lambda s: {"log": ["a"]})
    inner.add_node("b", lambda s: {"log": ["b"]})
    inner.add_edge(START, "a")
    inner.add_edge("a", "b")
    inner.add_edge("b", END)
    outer = StateGraph(_Log)
    outer.add_node("before", lambda s: {"log": ["before"]})
    outer.add_node("sub", inner.compile())  # a subgraph call: namespace "sub:<task id>"
    outer.add_edge(START, "before")
    outer.add_edge("before", "sub")
    outer.add_edge("sub", END)
    return outer.compile(checkpointer=saver)


def _namespaces(saver: BreakpilotSaver, thread: str) -> list[str]:
    config = {"configurable": {"thread_id": thread}}
    return sorted({t.config["configurable"]["checkpoint_ns"] for t in saver.list(config)})


def test_subgraph_calls_go_with_the_root_checkpoint_they_started_from(backend_url: str) -> None:
    """Round 6: retention per namespace kept every past run's subgraph calls for good.

    ``keep_last=2`` held 42 checkpoints in 21 namespaces after ten runs, and ``prune``
    kept every call; LangGraph's PostgresSaver deletes a call with the root
    checkpoint it started from, and leaves the kept head without a removed parent.
    """
    config = {"configurable": {"thread_id": "t"}}
    with BreakpilotSaver(backend_url, keep_last=2) as saver:
        graph = _nested_graph(saver)
        for run in range(6):
            state = graph.invoke({"log": [f"run{run}"]}, config)
            assert state["log"][-4:] == [f"run{run}", "before", "a", "b"]
            assert len(_namespaces(saver, "t")) <= 2  # the root, and at most the last call
        assert len(list(saver.list(config))) <= 4
    with BreakpilotSaver(backend_url) as saver:  # no keep_last: every call is kept...
        graph = _nested_graph(saver)
        for run in range(3):
            graph.invoke({"log": [f"more{run}"]}, {"configurable": {"thread_id": "u"}})
        assert len(_namespaces(saver, "u")) == 4
        saver.prune(["u"])  # ...until a prune: the root's head, and nothing of past calls
        assert _namespaces(saver, "u") == [""]
        head = saver.get_tuple({"configurable": {"thread_id": "u", "checkpoint_ns": ""}})
        assert head.parent_config is None
        state = graph.invoke({"log": ["after"]}, {"configurable": {"thread_id": "u"}})
        assert state["log"][-4:] == ["after", "before", "a", "b"]
        assert state["log"][0] == "more0"  # the state itself was kept whole
