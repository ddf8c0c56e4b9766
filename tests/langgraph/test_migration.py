"""Revision 0004 (LangGraph tables) on a database that holds data from the previous head."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from breakpilot_store import CheckpointStore
from breakpilot_store.langgraph import BreakpilotSaver, ThreadConflictError
from breakpilot_store.migrate import HEAD, alembic_config, downgrade
from tests.migration_support import at_revision

T0 = "2026-01-01T00:00:00.000000+00:00"
REVISION = "0004"


def previous_head() -> str:
    """Where revision 0004 starts from (read from the migration, not hard-coded)."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


def tables(db: Any) -> set[str]:
    if db.kind == "sqlite":
        return {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {
        r[0]
        for r in db.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }


def test_upgrade_from_the_previous_head_keeps_data_and_adds_the_tables(
    backend_url: str, raw: Any
) -> None:
    at_revision(backend_url, previous_head())
    db = raw()
    assert "langgraph_writes" not in tables(db)
    stamp = T0 if db.kind == "sqlite" else datetime.fromisoformat(T0)
    db.execute(
        "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at)"
        " VALUES (?, 3, 2, ?, ?)",
        ("old", stamp, stamp),
    )
    for seq in (2, 3):
        db.execute(
            "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("old", seq, f"n{seq}", stamp, f'{{"seq": {seq}}}', "{}"),
        )
    with CheckpointStore(backend_url) as store:  # upgrades to head
        assert store.get("old:3").data == {"seq": 3}
        assert store.create("old", "next", {}).id == "old:4"
        with BreakpilotSaver(store) as saver:
            config = {"configurable": {"thread_id": "lg", "checkpoint_ns": ""}}
            from langgraph.checkpoint.base import empty_checkpoint

            stored = saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
            saver.put_writes(stored, [("ch", 1)], "task")
            assert saver.get_tuple(config).pending_writes == [("task", "ch", 1)]
            # A session that is not a LangGraph thread is never taken over or read as one.
            with pytest.raises(ThreadConflictError, match="not a LangGraph thread"):
                saver.put(
                    {"configurable": {"thread_id": "old", "checkpoint_ns": ""}},
                    empty_checkpoint(),
                    {},
                    {},
                )
            assert saver.get_tuple({"configurable": {"thread_id": "old"}}) is None
            assert list(saver.list(None)) == [saver.get_tuple(config)]
        downgrade(store.engine, previous_head())
    db = raw()
    assert {"langgraph_writes", "langgraph_threads"}.isdisjoint(tables(db))
    assert db.query("SELECT seq FROM checkpoints WHERE session_id = 'old' ORDER BY seq") == [
        (2,),
        (3,),
        (4,),
    ]
    with CheckpointStore(backend_url) as store:  # and up again
        assert store.get("old:4") is not None
    assert raw().query("SELECT version_num FROM alembic_version") == [(HEAD,)]
