"""Multi-turn Runner conversations, one process per turn, continued from the store.

Each turn is a fresh ``python`` process (tests/integrations/turn_workers.py) with a
scripted model: the model can only be shown the earlier turns if the session was read
back from the database, and the raw rows show what an operator would see.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def turn(kind: str, db: Path, text: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integrations.turn_workers", kind, str(db), text],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_agents_sdk_conversation_survives_restarts(tmp_path: Path) -> None:
    pytest.importorskip("agents")
    db = tmp_path / "agents.db"
    first = turn("sdk", db, "hello")
    assert first == {"reply": "turn 1: ['hello']", "seen": [["hello"]]}
    second = turn("sdk", db, "calc")
    # The tool ran in this process; the model saw turn 1 from the store.
    assert second["reply"] == "turn 2: ['hello', 'calc'] sum=5"
    assert second["seen"][0] == ["hello", "calc"]
    third = turn("sdk", db, "bye")
    assert third["reply"] == "turn 3: ['hello', 'calc', 'bye']"

    with sqlite3.connect(db) as raw:
        rows = raw.execute(
            "SELECT seq, name, coalesce(json_extract(data, '$.content'), "
            "json_extract(data, '$.output'), json_extract(data, '$.name')) "
            "FROM checkpoints WHERE session_id = 'oai:user-42' ORDER BY seq"
        ).fetchall()
    assert [(seq, name) for seq, name, _ in rows] == [
        (1, "user"),
        (2, "assistant"),
        (3, "user"),
        (4, "function_call"),
        (5, "function_call_output"),
        (6, "assistant"),
        (7, "user"),
        (8, "assistant"),
    ]
    assert [text for _, name, text in rows if name == "user"] == ["hello", "calc", "bye"]
    assert rows[3][2] == "add" and rows[4][2] == "5"


def test_adk_conversation_survives_restarts(tmp_path: Path) -> None:
    pytest.importorskip("google.adk")
    db = tmp_path / "agents.db"
    first = turn("adk", db, "hello")
    assert first["reply"] == "turn 1: ['hello']"
    assert first["state"] == {"last_reply": "turn 1: ['hello']"}
    second = turn("adk", db, "remember tea")
    assert second["reply"] == "turn 2: ['hello', 'remember tea']"
    assert second["seen"][0] == ["hello", "remember tea"]
    third = turn("adk", db, "bye")
    assert third["reply"] == "turn 3: ['hello', 'remember tea', 'bye']"
    # user: and app: state written by the tool in turn 2 came back in turn 3; temp: not.
    assert third["state"] == {
        "last_reply": "turn 3: ['hello', 'remember tea', 'bye']",
        "app:calls": 1,
        "user:topic": "tea",
    }
    assert third["events"] == 8

    with sqlite3.connect(db) as raw:
        names = raw.execute(
            "SELECT name FROM checkpoints WHERE session_id = 'adk:app:user-42:conv' ORDER BY seq"
        ).fetchall()
        assert [n for (n,) in names] == ["user", "assistant"] * 2 + ["assistant"] * 2 + [
            "user",
            "assistant",
        ]
        assert raw.execute("SELECT state FROM adk_user_states").fetchall() == [('{"topic":"tea"}',)]
        assert raw.execute("SELECT state FROM adk_app_states").fetchall() == [('{"calls":1}',)]
        stored = raw.execute("SELECT group_concat(data) FROM checkpoints").fetchone()[0]
        assert "temp:scratch" not in stored and "never stored" not in stored
