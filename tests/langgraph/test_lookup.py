"""A checkpoint id is found through an index, and the default store works."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from breakpilot_store.langgraph import BreakpilotSaver, operations


def test_get_tuple_by_id_and_newest_use_the_name_index(tmp_path: Path) -> None:
    db = tmp_path / "plan.db"
    with BreakpilotSaver(str(db)) as saver:
        saver.put(
            {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, empty_checkpoint(), {}, {}
        )
    raw = sqlite3.connect(db)
    try:
        values = {"sid": "t", "tid": "t", "ns": "", "name": "x"}
        for statement in (operations._ONE_WITH_WRITES, operations._NEWEST_WITH_WRITES):
            sql = f"EXPLAIN QUERY PLAN {statement.text}"
            plan = " ".join(row[-1] for row in raw.execute(sql, values))
            assert "USING INDEX ix_checkpoints_session_id_name_seq" in plan, plan
            assert "SCAN c" not in plan, plan
            # The pending writes beside it: found through their primary key.
            assert "SEARCH w USING" in plan and "SCAN w" not in plan, plan
    finally:
        raw.close()


def test_none_opens_the_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKPILOT_STORE_URL", str(tmp_path / "default.db"))
    config = {"configurable": {"thread_id": "d", "checkpoint_ns": ""}}
    with BreakpilotSaver() as saver:
        saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    with BreakpilotSaver(str(tmp_path / "default.db")) as saver:
        assert saver.get_tuple(config).metadata == {"source": "input", "step": -1}
