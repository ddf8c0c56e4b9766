"""``doctor``, ``db current`` and ``db check`` on each backend.

Found by our hostile round 5: on every PostgreSQL URL all three failed with
``relation "sqlite_master" does not exist`` (a probe for SQLite's read-only places ran
before the engine was asked which database it is).
"""

from __future__ import annotations

from click.testing import CliRunner

from breakpilot_store import CheckpointStore
from breakpilot_store.cli.commands import cli
from breakpilot_store.migrate import HEAD


def test_read_tools_work_on_each_backend(backend_url: str) -> None:
    with CheckpointStore(backend_url) as store:
        store.create("agent-7", "plan", {"step": 1})
        store.create("agent-7", "act", {"step": 2})
    runner = CliRunner()
    for args, expected in (
        (["db", "current"], f"{HEAD} (head)"),
        (["db", "check"], HEAD),
        (["doctor"], "no problems"),
    ):
        result = runner.invoke(cli, ["--db", backend_url, *args])
        assert result.exit_code == 0, (args, result.output)
        assert expected in result.output, (args, result.output)
