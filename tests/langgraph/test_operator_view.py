"""What an operator sees of LangGraph threads: raw sqlite3 and the breakpilot-store CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from langchain_core.messages import HumanMessage

from breakpilot_store.cli.commands import cli
from breakpilot_store.langgraph import BreakpilotSaver
from tests.langgraph.graphs import tool_agent

QUESTION = {"messages": [HumanMessage(content="what is 6 times 7?")]}


def run_cli(db: Path, *args: Any) -> Any:
    result = CliRunner().invoke(cli, ["--db", str(db), *map(str, args)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def thread_on_disk(db: Path) -> None:
    with BreakpilotSaver.from_conn_string(str(db)) as saver:
        tool_agent(saver).invoke(QUESTION, {"configurable": {"thread_id": "chat-1"}})


def test_messages_read_with_json_extract_at_the_sqlite3_prompt(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    thread_on_disk(db)
    raw = sqlite3.connect(db)
    try:
        # The newest checkpoint of the thread: its messages' types and contents.
        rows = raw.execute(
            """
            SELECT json_extract(m.value, '$."$type"'), json_extract(m.value, '$.content')
            FROM checkpoints c, json_each(c.data, '$.channel_values.messages') m
            WHERE c.session_id = 'chat-1'
              AND c.seq = (SELECT max(seq) FROM checkpoints WHERE session_id = 'chat-1')
            ORDER BY m.key
            """
        ).fetchall()
        assert rows == [
            ("langchain_core.messages.human:HumanMessage", "what is 6 times 7?"),
            ("langchain_core.messages.ai:AIMessage", ""),
            ("langchain_core.messages.tool:ToolMessage", "42"),
            ("langchain_core.messages.ai:AIMessage", "The answer is 42."),
        ]
        # One row per LangGraph checkpoint, named by its LangGraph id, metadata as JSON.
        meta = raw.execute(
            "SELECT name, json_extract(metadata, '$.source'), json_extract(metadata, '$.step'), "
            "json_extract(data, '$.id') FROM checkpoints WHERE session_id = 'chat-1' ORDER BY seq"
        ).fetchall()
        assert [(source, step) for _, source, step, _ in meta] == [
            ("input", -1),
            ("loop", 0),
            ("loop", 1),
            ("loop", 2),
            ("loop", 3),
        ]
        assert all(name == data_id for name, _, _, data_id in meta)
        tool_call = raw.execute(
            "SELECT json_extract(data, '$.channel_values.messages[1].tool_calls[0].args.a') "
            "FROM checkpoints WHERE session_id = 'chat-1' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        assert tool_call == (6,)
        # Pending writes are rows too, values as JSON.
        writes = raw.execute(
            "SELECT channel, json_extract(value, '$[0].content') FROM langgraph_writes "
            "WHERE session_id = 'chat-1' AND channel = 'messages' "
            "ORDER BY checkpoint_id, task_id, idx"
        ).fetchall()
        assert ("messages", "The answer is 42.") in writes
    finally:
        raw.close()


def test_cli_sessions_list_show_export_on_a_langgraph_thread(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    thread_on_disk(db)
    sessions = json.loads(run_cli(db, "sessions", "--json").output)
    assert [(s["session_id"], s["checkpoints"]) for s in sessions] == [("chat-1", 5)]
    listed = json.loads(run_cli(db, "list", "chat-1", "--json").output)
    assert len(listed) == 5
    newest = max(listed, key=lambda cp: int(cp["id"].rsplit(":", 1)[1]))
    assert newest["data"]["channel_values"]["messages"][-1]["content"] == "The answer is 42."
    shown = json.loads(run_cli(db, "show", newest["id"], "--json").output)
    assert shown["name"] == newest["data"]["id"]
    assert "The answer is 42." in run_cli(db, "show", newest["id"]).output
    out = tmp_path / "chat-1.json"
    run_cli(db, "export", "chat-1", "--output", out)
    exported = json.loads(out.read_text())
    assert [cp["id"] for cp in exported] == [f"chat-1:{n}" for n in range(1, 6)]


def test_cli_fork_makes_a_thread_langgraph_resumes(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    thread_on_disk(db)
    # Fork after the tool ran (seq 4): the new thread continues from there.
    done = run_cli(db, "fork", "chat-1:4", "chat-2")
    assert "forked 4 checkpoints up to chat-1:4 into session 'chat-2'" in done.output
    with BreakpilotSaver.from_conn_string(str(db)) as saver:
        graph = tool_agent(saver)
        state = graph.get_state({"configurable": {"thread_id": "chat-2"}})
        assert [m.content for m in state.values["messages"]][-1] == "42"
        assert state.next == ("agent",)
        result = graph.invoke(None, {"configurable": {"thread_id": "chat-2"}})
        assert result["messages"][-1].content == "The answer is 42."
    raw = sqlite3.connect(db)
    try:
        origins = raw.execute(
            "SELECT seq, origin_id FROM checkpoints WHERE session_id = 'chat-2' ORDER BY seq"
        ).fetchall()
    finally:
        raw.close()
    assert origins[:4] == [(n, f"chat-1:{n}") for n in range(1, 5)]
    assert origins[4] == (5, None)  # the resumed run's own checkpoint


def test_cli_fork_errors_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    thread_on_disk(db)
    run_cli(db, "fork", "chat-1:2", "chat-2")
    before = sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone()
    for args, message in [
        (("chat-1:99", "x"), "no checkpoint 'chat-1:99'"),
        (("chat-1", "x"), "is not a checkpoint id"),
        (("chat-1:2", "chat-1"), "onto itself"),
        (("chat-1:3", "chat-2"), "session 'chat-2' already exists"),
    ]:
        result = CliRunner().invoke(cli, ["--db", str(db), "fork", *args])
        assert result.exit_code == 1 and message in result.output, result.output
    assert sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone() == before


def test_the_readme_query_reads_a_thread_s_messages(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## LangGraph") :]
    query = section[
        section.index("```sql\n") + 7 : section.index("```", section.index("```sql\n") + 7)
    ]
    db = tmp_path / "agents.db"
    with BreakpilotSaver.from_conn_string(str(db)) as saver:
        tool_agent(saver).invoke(QUESTION, {"configurable": {"thread_id": "t-1"}})
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = raw.execute(query).fetchall()
    finally:
        raw.close()
    assert [content for _, content in rows] == ["what is 6 times 7?", "", "42", "The answer is 42."]
    assert rows[0][0] == "langchain_core.messages.human:HumanMessage"
