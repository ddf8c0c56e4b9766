"""Revision 0005 (ADK state tables): upgrade from the previous head with data, and back."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.engine import create_store_engine, resolve_url
from breakpilot_store.migrate import alembic_config, downgrade
from tests.migration_support import at_revision

ADK_TABLES = {"adk_sessions", "adk_app_states", "adk_user_states"}


def previous_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    down = script.get_revision("0005").down_revision
    assert isinstance(down, str)
    return down


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_upgrade_from_previous_head_keeps_data_and_serves_adk(db_path: Path) -> None:
    pytest.importorskip("google.adk")
    from breakpilot_store.adk import BreakpilotSessionService

    at_revision(db_path, previous_revision())
    assert not ADK_TABLES & tables(db_path)
    with sqlite3.connect(db_path) as raw:
        before = raw.execute("SELECT version_num FROM alembic_version").fetchall()
    assert before == [(previous_revision(),)]

    # Data written at the previous head, by the code of that era's API.
    engine = create_store_engine(resolve_url(db_path))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at) "
                "VALUES ('old', 2, 2, '2026-01-01T00:00:00.000000+00:00', "
                "'2026-01-01T00:00:00.000000+00:00')"
            )
            for seq in (1, 2):
                conn.exec_driver_sql(
                    "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata) "
                    f"VALUES ('old', {seq}, 'step', '2026-01-01T00:00:00.000000+00:00', "
                    f"'{{\"n\":{seq}}}', '{{}}')"
                )
    finally:
        engine.dispose()

    with CheckpointStore(db_path) as store:  # opening upgrades to head
        assert [c.data for c in store.list_checkpoints("old")] == [{"n": 1}, {"n": 2}]
        assert CheckpointManager("old", store=store).create("step", {"n": 3}).id == "old:3"

        async def use() -> dict[str, object]:
            service = BreakpilotSessionService(store)
            s = await service.create_session(
                app_name="a", user_id="u", session_id="s", state={"app:x": 1}
            )
            await service.close()
            return s.state

        assert asyncio.run(use()) == {"app:x": 1}
    assert ADK_TABLES <= tables(db_path)

    engine = create_store_engine(resolve_url(db_path))
    try:
        downgrade(engine, previous_revision())
    finally:
        engine.dispose()
    assert not ADK_TABLES & tables(db_path)
    with sqlite3.connect(db_path) as raw:
        # The checkpoints (the old session's and the ADK session's store rows) remain.
        assert raw.execute(
            "SELECT count(*) FROM checkpoints WHERE session_id = 'old'"
        ).fetchone() == (3,)
