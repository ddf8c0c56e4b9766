"""A wheel built from the repo, installed in a fresh virtualenv, opens a store from an
unrelated directory, with the migrations found inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
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
    # The web view's templates, script, styles and vendored chart (with its licence).
    names = set(zipfile.ZipFile(wheel).namelist())
    for packaged in (
        "breakpilot_store/ui/templates/base.html",
        "breakpilot_store/ui/templates/sessions.html",
        "breakpilot_store/ui/templates/session.html",
        "breakpilot_store/ui/templates/checkpoint.html",
        "breakpilot_store/ui/templates/diff.html",
        "breakpilot_store/ui/static/app.js",
        "breakpilot_store/ui/static/app.css",
        "breakpilot_store/ui/static/vendor/uPlot.iife.min.js",
        "breakpilot_store/ui/static/vendor/uPlot.min.css",
        "breakpilot_store/ui/static/vendor/uPlot-LICENSE.txt",
    ):
        assert packaged in names, packaged
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: ui" in requires
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
        "from importlib.resources import files\n"
        "ui = files('breakpilot_store') / 'ui'\n"
        "print((ui / 'templates' / 'sessions.html').is_file(),"
        " (ui / 'static' / 'vendor' / 'uPlot.iife.min.js').is_file())\n"
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
    # Every revision shipped and applied; the web view's files are in the installed package.
    assert done.stdout.split() == ["agent-7:1", HEAD, "True", "True"]
