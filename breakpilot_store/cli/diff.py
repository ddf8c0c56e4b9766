"""``breakpilot-store diff ID_A ID_B``: what changed between two checkpoints, by path."""

from __future__ import annotations

from typing import Any

import click

from ..core.diff import MISSING, count_kinds, diff_checkpoints
from ..errors import CheckpointValueError
from .commands import Options, _json, _where, cli, common, open_read, pass_options
from .format import clip, compact_json, plural
from .lines import printable


def _value(value: Any, width: int) -> str:
    return "-" if value is MISSING else clip(printable(compact_json(value)), width)


@cli.command()
@click.argument("id_a", metavar="ID_A")
@click.argument("id_b", metavar="ID_B")
@common
@pass_options
def diff(opts: Options, id_a: str, id_b: str) -> None:
    """Paths added, removed and changed from checkpoint ID_A to ID_B (name, data, metadata)."""
    with open_read(opts.db) as store:
        found = []
        for cid in (id_a, id_b):
            cp = store.get(cid)
            if cp is None:
                raise CheckpointValueError(
                    f"no checkpoint {cid!r} in {_where(store)} (ids are SESSION:SEQ)"
                )
            found.append(cp)
    a, b = found
    changes = diff_checkpoints(a, b)
    counts = count_kinds(changes)
    out = _json(opts)
    if opts.json:
        out.json({"a": a.id, "b": b.id, **counts, "changes": [c.to_dict() for c in changes]})
        return
    out.echo(f"--- {printable(a.id)}  {printable(a.name)}  {a.timestamp.isoformat()}")
    out.echo(f"+++ {printable(b.id)}  {printable(b.name)}  {b.timestamp.isoformat()}")
    width = max(out.out.width - 4, 20)
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for change in changes:
        path = printable(change.path)
        if change.kind == "changed":
            out.echo(f"~ {clip(path, width)}")
            out.echo(f"    - {_value(change.old, width - 4)}")
            out.echo(f"    + {_value(change.new, width - 4)}")
        else:
            value = change.new if change.kind == "added" else change.old
            out.echo(f"{marks[change.kind]} {clip(path, width)}")
            out.echo(f"    {_value(value, width)}")
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if changes:
        out.note(f"{plural(len(changes), 'difference')}: {summary}")
    else:
        out.note("no differences: same name, data and metadata")
