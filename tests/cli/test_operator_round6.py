"""The operators' commands, round 6 of the hostile campaign.

Found: ``import``/``copy`` into ``sqlite://`` (or ``BREAKPILOT_STORE_URL=:memory:``)
printed success and kept nothing; ``import`` upgraded a database at an older revision
that every other command refused to touch; ``list`` crashed on a stdout that cannot
encode the data (``PYTHONIOENCODING=ascii``); ``doctor`` and ``vacuum`` looked for the
WAL beside a symlink, not beside the file SQLite writes it next to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from breakpilot_store import CheckpointStore, migrate
from tests.cli.conftest import raw_rows

DOC = [{"id": "z:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}]


def _cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "breakpilot_store", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--db", "sqlite://", "import", "z", "{doc}"], {}),
        (["import", "z", "{doc}"], {"BREAKPILOT_STORE_URL": ":memory:"}),
        (["copy", "--from", "{db}", "--to", "sqlite://"], {}),
        (["--db", "sqlite:///:memory:", "compress", "z"], {}),
        (["--db", "sqlite:///file::memory:?uri=true", "import", "z", "{doc}"], {}),
    ],
)
def test_writing_into_an_in_memory_database_is_refused(run, db, tmp_path, args, env) -> None:  # noqa: ANN001
    doc = tmp_path / "z.json"
    doc.write_text(json.dumps(DOC))
    result = run(*[a.format(doc=doc, db=db) for a in args], env=env)
    assert result.exit_code == 2, result.output
    assert "in-memory database" in result.output and "gone" in result.output


def test_import_and_copy_refuse_an_older_schema_and_create_a_new_one(run, db, tmp_path) -> None:  # noqa: ANN001
    engine = create_engine(f"sqlite:///{db}")
    migrate.downgrade(engine, "0002")
    engine.dispose()
    doc = tmp_path / "z.json"
    doc.write_text(json.dumps(DOC))
    source = tmp_path / "new.db"
    for args in (["--db", db, "import", "z", doc], ["copy", "--from", source, "--to", db]):
        if args[0] == "copy":
            with CheckpointStore(source) as store:
                store.create("fresh", "n", {})
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert "'0002', older than" in result.stderr and "db upgrade" in result.stderr
        assert raw_rows(db, "SELECT version_num FROM alembic_version") == [("0002",)]
    # A new file, and an empty one, get the schema as before.
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    for target in (tmp_path / "brand-new.db", empty):
        result = run("--db", target, "import", "z", doc)
        assert result.exit_code == 0, result.output
        assert raw_rows(target, "SELECT session_id, seq FROM checkpoints") == [("z", 1)]


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_list_on_a_stdout_that_cannot_encode_the_data(tmp_path, encoding) -> None:  # noqa: ANN001
    path = tmp_path / "t.db"
    with CheckpointStore(path) as store:
        store.create("a", "schritt-ä€😀", {"text": "ä€😀"})
    env = {"PYTHONIOENCODING": encoding}
    lines = _cli("--db", path, "list", "a", env=env)
    assert lines.returncode == 0, lines.stderr
    assert "\\u20ac" in lines.stdout and "\\U0001f600" in lines.stdout  # escaped, not lost
    assert "-" * 20 in lines.stdout  # the rule under the heading, in ASCII
    listed = _cli("--db", path, "list", "a", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["data"] == {"text": "ä€😀"}  # JSON: UTF-8


def test_doctor_and_vacuum_find_the_wal_through_a_symlink(run, tmp_path) -> None:  # noqa: ANN001
    real = tmp_path / "real"
    real.mkdir()
    path = real / "t.db"
    link = tmp_path / "link.db"
    link.symlink_to(path)
    store = CheckpointStore(path)
    for _ in range(50):
        store.create("w", "s", {"pad": "x" * 2000})  # the WAL stays: the store is open
    wal = Path(f"{path}-wal").stat().st_size
    assert wal > 100_000 and not Path(f"{link}-wal").exists()
    through_link = run("--db", link, "doctor", "--json")
    assert through_link.exit_code == 0, through_link.output
    checks = {c["check"]: c["value"] for c in json.loads(through_link.output)["checks"]}
    direct = run("--db", path, "doctor", "--json")
    direct_checks = {c["check"]: c["value"] for c in json.loads(direct.output)["checks"]}
    assert checks["WAL size"] == direct_checks["WAL size"] != "0 B"
    vacuumed = run("--db", link, "vacuum", "--json")
    assert vacuumed.exit_code == 0, vacuumed.output
    assert json.loads(vacuumed.output)["bytes_before"] > wal  # the file and its WAL
    store.close()


def test_a_path_with_a_newline_is_printed_escaped_on_one_line(run, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "new\nline.db"
    with CheckpointStore(path) as store:
        store.create("a", "n", {})
    for args in (["vacuum"], ["db", "upgrade"], ["db", "check"]):
        result = run("--db", path, *args)
        assert result.exit_code == 0, result.output
        assert result.output.count("\n") == 1 and "new\\nline.db" in result.output, args


def test_a_memory_uri_opens_instead_of_spinning() -> None:
    """``file::memory:`` as a URI: its journal mode stays ``memory``, and the switch to
    WAL was asked again for ever (100% CPU; a review of round 6). A child process, so
    that the old behaviour fails here instead of hanging the suite."""
    code = (
        "from breakpilot_store import CheckpointStore\n"
        "with CheckpointStore('sqlite:///file::memory:?uri=true') as s:\n"
        "    print(s.create('a', 'n', {}).id, s.get_latest('a').id)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["a:1", "a:1"]


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_every_command_on_a_stdout_that_cannot_encode_the_data(tmp_path, encoding) -> None:  # noqa: ANN001
    # A review of the round: `list` was fixed alone; `sessions` and `show` still ended
    # with "unexpected UnicodeEncodeError ... please report it".
    path = tmp_path / "t.db"
    with CheckpointStore(path) as store:
        store.create("ä€", "n€", {"t": "ä€😀"})
    env = {"PYTHONIOENCODING": encoding}
    for args in (["sessions"], ["show", "ä€:1"], ["doctor"]):
        done = _cli("--db", path, *args, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert "please report" not in done.stderr
    assert "\\u20ac" in _cli("--db", path, "show", "ä€:1", env=env).stdout
    shown = _cli("--db", path, "--json", "show", "ä€:1", env=env)
    assert json.loads(shown.stdout)["data"] == {"t": "ä€😀"}
    listed = _cli("--db", path, "--json", "sessions", env=env)
    assert json.loads(listed.stdout)[0]["session_id"] == "ä€"
