"""keep_last: the N newest checkpoints per thread and namespace, in the put's transaction."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

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
