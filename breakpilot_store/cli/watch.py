"""``breakpilot-store watch SESSION``: print each new checkpoint as it lands (read-only)."""

from __future__ import annotations

import math
from typing import Any

import click

from ..codec import check_key
from .commands import Options, _json, cli, common, open_read, pass_options
from .listing import follow, until_interrupted


def finite(value: Any, what: str) -> Any:
    """Refuse NaN as a usage error (``FloatRange`` lets it through: it compares false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", param_hint=what)
    return value


@cli.command()
@click.argument("session")
@click.option("--name", help="Only checkpoints with this name.")
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    callback=lambda ctx, param, value: finite(value, "--interval"),
    default=0.5,
    show_default=True,
    help="Seconds between looks.",
)
@common
@pass_options
def watch(opts: Options, session: str, name: str | None, interval: float) -> None:
    """Print each new checkpoint of SESSION as it lands, one line each, until Ctrl-C.

    With --json, one JSON object per line (the export format's entry). Read-only; a
    clear or compression of the session does not disturb it.
    """
    check_key(session, "session")  # non-UTF-8 argv: one Error: line, not a traceback
    if name is not None:
        check_key(name, "--name")
    out = _json(opts)
    with until_interrupted(), open_read(opts.db) as store:
        follow(store, out, session, None, json_mode=opts.json, interval=interval, name=name)
