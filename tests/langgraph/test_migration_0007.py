"""Revision 0007 (``langgraph_writes`` WITHOUT ROWID on SQLite): data kept both ways."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from breakpilot_store import CheckpointStore
from breakpilot_store.langgraph import BreakpilotSaver
from breakpilot_store.migrate import HEAD, downgrade, upgrade

WRITES = "SELECT * FROM langgraph_writes ORDER BY session_id, checkpoint_id, task_id, idx"


def _table_sql(db: Any) -> str:
    return db.query("SELECT sql FROM sqlite_master WHERE name = 'langgraph_writes'")[0][0]


def _fill(saver: BreakpilotSaver) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    for step in range(3):
        cp = empty_checkpoint()
        cp["channel_values"] = {"step": step}
        config = saver.put(config, cp, {"step": step}, {})
        saver.put_writes(config, [("messages", {"n": step}), ("__error__", "boom")], f"task{step}")
    return config


def test_down_and_up_again_keeps_every_pending_write(backend_url: str, raw: Any) -> None:
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        config = _fill(saver)
        before = (raw().dump(), raw().query(WRITES))
        pending = saver.get_tuple(config).pending_writes
        assert len(before[1]) == 6 and len(pending) == 2

        downgrade(store.engine, "0006")
        db = raw()
        assert (db.dump(), db.query(WRITES)) == before
        if db.kind == "sqlite":
            assert "WITHOUT ROWID" not in _table_sql(db).upper()
            assert db.query("SELECT count(*) FROM langgraph_writes WHERE rowid > 0") == [(6,)]

        upgrade(store.engine, HEAD)
        db = raw()
        assert db.query("SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert (db.dump(), db.query(WRITES)) == before
        if db.kind == "sqlite":
            assert "WITHOUT ROWID" in _table_sql(db).upper()
            # One B-tree: no separate index for the primary key.
            autoindexes = "SELECT name FROM sqlite_master WHERE tbl_name = 'langgraph_writes'"
            assert db.query(autoindexes) == [("langgraph_writes",)]
            assert db.query("PRAGMA foreign_key_check(langgraph_writes)") == []
        assert saver.get_tuple(config).pending_writes == pending
        # Writes keep working, and a session's deletion still cascades to them.
        saver.put_writes(config, [("messages", {"n": 9})], "task9")
        assert len(saver.get_tuple(config).pending_writes) == 3
        saver.delete_thread("t")
        assert raw().query(WRITES) == []


def test_a_new_database_has_the_table_without_rowid(tmp_path) -> None:  # noqa: ANN001
    import sqlite3

    path = tmp_path / "new.db"
    with CheckpointStore(str(path)):
        pass
    conn = sqlite3.connect(path)
    try:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'langgraph_writes'"
        ).fetchone()
    finally:
        conn.close()
    assert "WITHOUT ROWID" in sql.upper()
