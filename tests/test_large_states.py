"""Large states (a chat history up to ~1 MB) through the hot path's UTF-8 binding: stored
as JSON *text* an operator can query, read back exactly, on UTF-8 and UTF-16 files."""

from __future__ import annotations

import sqlite3

import pytest

from benchmarks.chat_state import chat_state
from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.errors import CheckpointValueError


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16le"])
def test_large_states_are_text_at_the_sqlite3_prompt(tmp_path, encoding) -> None:
    path = tmp_path / "large.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA encoding = '{encoding}'")
    raw.execute("CREATE TABLE made_by_hand (x)")  # the encoding is fixed on first write
    raw.commit()
    raw.close()
    states = [chat_state(step, size) for step, size in ((1, 1_000), (2, 120_000), (3, 1_000_000))]
    with CheckpointStore(path) as store:
        mgr = CheckpointManager("big", store=store)
        ids = [mgr.create("turn", state).id for state in states * 2]  # the 2nd lap: one INSERT
        assert ids == [f"big:{n}" for n in range(1, 7)]
        for n, state in enumerate(states * 2, start=1):
            assert mgr.get(f"big:{n}").data == state
        assert mgr.get_latest().data == states[-1]
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA encoding").fetchone()[0] == encoding
        rows = raw.execute(
            "SELECT seq, typeof(data), json_valid(data), json_extract(data, '$.step'),"
            " json_array_length(data, '$.messages') FROM checkpoints ORDER BY seq"
        ).fetchall()
        assert [r[:4] for r in rows] == [(n, "text", 1, (n - 1) % 3 + 1) for n in range(1, 7)]
        assert [r[4] for r in rows[:3]] == [len(s["messages"]) for s in states]
    finally:
        raw.close()


def test_a_refused_large_state_writes_nothing(tmp_path) -> None:
    state = chat_state(1, 120_000)
    state["messages"][-7]["score"] = float("nan")
    with CheckpointStore(tmp_path / "x.db") as store:
        mgr = CheckpointManager("big", store=store)
        mgr.create("ok", {"a": 1})
        mgr.create("ok", {"a": 2})  # the connection now knows the counter: the one-INSERT path
        n = len(state["messages"]) - 7
        with pytest.raises(CheckpointValueError, match=rf"^data\['messages'\]\[{n}\]\['score'\]"):
            mgr.create("bad", state)
        assert mgr.create("ok", {"a": 3}).id == "big:3"
    raw = sqlite3.connect(tmp_path / "x.db")
    assert raw.execute("SELECT count(*), max(seq) FROM checkpoints").fetchone() == (3, 3)
    raw.close()
