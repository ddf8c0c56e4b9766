"""A wheel built from the repo, installed in a fresh virtualenv, opens a store from an
unrelated directory, with the migrations found inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from breakpilot_store.migrate import HEAD

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_migrations(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("breakpilot_store-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import breakpilot_store, pathlib, sqlite3\n"
        "from breakpilot_store import CheckpointManager\n"
        "from breakpilot_store.migrate import migrations_path\n"
        "assert 'site-packages' in str(migrations_path()), migrations_path()\n"
        "m = CheckpointManager('agent-7', store='agents.db')\n"
        "print(m.create('start', {'ok': True}).id)\n"
        "print(sqlite3.connect('agents.db').execute('SELECT version_num FROM alembic_version')"
        ".fetchone()[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BREAKPILOT_STORE_URL")}
    done = subprocess.run(
        [str(python), "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["agent-7:1", HEAD]  # every revision shipped and applied
