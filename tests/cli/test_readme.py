"""Every CLI command is documented in README.md and docs/cli.md."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from breakpilot_store.cli.commands import cli

ROOT = Path(__file__).resolve().parents[2]


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, f"{path} "))
        else:
            paths.append(path)
    return paths


def test_the_cli_has_the_commands_the_issue_asks_for():
    assert set(command_paths(cli)) == {
        "sessions",
        "list",
        "show",
        "export",
        "import",
        "copy",
        "fork",
        "compress",
        "delete",
        "prune",
        "db upgrade",
        "db current",
        "db check",
        "doctor",
        "vacuum",
        "demo",
        "diff",
        "watch",
        "ui",
        "lease show",
        "lease release",
    }


def _mentioned(text: str, path: str) -> bool:
    # `breakpilot-store [global options] <path>` anywhere, e.g. in a code block.
    options = r"(?:\s+--?[\w-]+(?:[ =](?!db\b|sessions\b)[^\s`-][^\s`]*)?)*"
    return re.search(rf"breakpilot-store{options}\s+{re.escape(path)}(?![\w-])", text) is not None


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_every_command_is_documented(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [path for path in command_paths(cli) if not _mentioned(text, path)]
    assert not missing, f"{doc} does not show: {', '.join(missing)}"


def test_the_check_itself_notices_a_missing_command():
    assert _mentioned("run `breakpilot-store --db x.db db check` now", "db check")
    assert not _mentioned("run `breakpilot-store db current` now", "db check")
    assert not _mentioned("breakpilot-store demo", "delete")


def test_readme_quick_start_begins_with_the_demo():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The operators' CLI") :]
    first = re.search(r"```(?:console|bash|sh)?\n(?:\$ )?(.+)", section)
    assert first is not None
    assert first.group(1).strip() == "breakpilot-store demo"


def _sqlite3_examples():
    for doc in ("README.md", "docs/cli.md"):
        for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
            if line.startswith("sqlite3 "):
                yield doc, line


@pytest.mark.parametrize(("doc", "line"), list(_sqlite3_examples()))
def test_the_documented_sqlite3_queries_run(doc, line, tmp_path):
    import shlex
    import sqlite3

    from breakpilot_store import CheckpointStore

    path = tmp_path / "agents.db"
    with CheckpointStore(path) as store:
        for step in range(1, 7):
            data = {"step": step, "messages": [{"role": "user", "content": "hi"}]}
            store.create("agent-7", "step_done", data, {"model": "m-1"})
    if "oai:" in line or "adk" in line:  # the framework sessions' examples
        from tests.integrations.test_operator_cli import fill_framework_sessions

        fill_framework_sessions(path, "s1")
    argv = shlex.split(line)
    assert argv[0] == "sqlite3" and "-readonly" in argv
    sql = argv[-1]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    assert rows, (doc, sql)
