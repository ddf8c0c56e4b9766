"""Where a manager keeps its checkpoints when no store is named."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from breakpilot_store import CheckpointManager


def test_url_from_environment(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("BREAKPILOT_STORE_URL", f"sqlite:///{path}")
    with CheckpointManager("agent") as mgr:
        mgr.create("n", {"v": 1})
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT session_id, seq FROM checkpoints").fetchall() == [("agent", 1)]


def test_user_data_directory_when_nothing_is_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BREAKPILOT_STORE_URL"}
    env["HOME"] = str(tmp_path)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    code = (
        "from breakpilot_store import CheckpointManager\n"
        "m = CheckpointManager('agent')\n"
        "print(m.create('n', {}).id)\n"
        "print(m.store.url.database)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    ident, where = done.stdout.split()
    assert ident == "agent:1"
    expected = tmp_path / "data" / "breakpilot-store" / "checkpoints.db"
    assert Path(where) == expected and expected.exists()


def test_path_objects_and_sqlalchemy_urls(tmp_path: Path) -> None:
    with CheckpointManager("a", store=tmp_path / "p.db") as m:
        m.create("n", {})
    with CheckpointManager("a", store=f"sqlite:///{tmp_path / 'p.db'}") as m:
        assert m.get_latest().id == "a:1"


def test_postgres_only_options_are_refused_for_sqlite(tmp_path: Path) -> None:
    import pytest

    from breakpilot_store import CheckpointStore, CheckpointValueError

    with pytest.raises(CheckpointValueError, match="pool_size"):
        CheckpointStore(tmp_path / "x.db", pool_size=3)
    assert not (tmp_path / "x.db").exists()
