"""Output and argument parsing for the ``breakpilot-store`` CLI.

Everything the commands print goes through :class:`Output`: rich tables and syntax
colouring on a terminal, plain text (no escape codes, 80 columns) when piped, and plain
JSON with ``--json``. Progress bars are drawn on stderr, and only on a terminal.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..checkpoint import Checkpoint
from ..core.repository import SessionInfo

# -- arguments --------------------------------------------------------------------------

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``30d``, ``12h``, ``15m``, ``45s`` or ``1d12h``.

    Raises:
        ValueError: The text is not such a duration, or it is zero.
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30d, 12h, 15m, 45s or 1d12h")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is zero; a duration must be longer than that")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # beyond timedelta's 999,999,999 days
        raise ValueError(f"{text!r} is too long; the longest is 999999999d") from None


class DurationType(click.ParamType):
    """A click parameter holding a :func:`parse_duration` duration."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:  # noqa: D102
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SinceType(click.ParamType):
    """A point in time: an ISO-8601 timestamp (UTC if no zone) or a duration ago."""

    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:  # noqa: D102
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            ago = parse_duration(text)
        except ValueError:
            pass
        else:
            try:
                return datetime.now(timezone.utc) - ago
            except OverflowError:  # before year 1: every checkpoint is newer
                return datetime.min.replace(tzinfo=timezone.utc)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a duration (30d, 12h, 15m, 45s) nor an ISO-8601 "
                "time (2026-11-24T09:30:00+00:00)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            # Its UTC form is before year 1 or after 9999 (0001-01-01T00:00+01:00): as
            # a duration reaching there, everything or nothing.
            before = moment.year == 1
            return (datetime.min if before else datetime.max).replace(tzinfo=timezone.utc)


DURATION = DurationType()
SINCE = SinceType()

# -- plain values -----------------------------------------------------------------------

# What must not reach a terminal raw: C0 and C1 controls (ESC starts every escape
# sequence; C1's CSI/OSC do too on some terminals), DEL, the bidirectional overrides
# and isolates (they reorder what is shown), line/paragraph separators and lone
# surrogates (not encodable). Agents choose ids and names; an operator reads them.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    r"""Escape what a terminal would act on (``\x1b``, ``\u202e``, ...), as Python does."""
    return _UNSAFE.sub(_escape, text)


def safe_lines(text: str) -> str:
    """:func:`safe` for each line of ``text``, keeping its line breaks."""
    return "\n".join(safe(line) for line in text.split("\n"))


def short_time(value: datetime | None) -> str:
    """Render a timestamp for a table: UTC, to the second, 19 characters."""
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str | None:
    """Render a timestamp for JSON output (ISO-8601, as in the export format)."""
    return None if value is None else value.isoformat()


def session_dict(info: SessionInfo) -> dict[str, Any]:
    """Return a session as a JSON-ready dict (timestamps as ISO-8601 strings)."""
    return {
        key: iso(value) if isinstance(value, datetime) else value
        for key, value in asdict(info).items()
    }


def compact_json(value: Any) -> str:
    """Render a JSON value on one line, readable (non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def payload_size(cp: Checkpoint) -> int:
    """Return the size in bytes of a checkpoint's stored data and metadata."""
    return len(compact_json(cp.data).encode()) + len(compact_json(cp.metadata).encode())


def human_bytes(size: int | None) -> str:
    """Render a byte count as ``12.3 KiB``."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def seq_ranges(seqs: Iterable[int]) -> str:
    """Render sequence numbers compactly: ``2-31, 33, 40-41``."""
    ordered = sorted(seqs)
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(runs)


def plural(n: int, word: str) -> str:
    """Return ``"1 checkpoint"`` / ``"3 checkpoints"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- output -----------------------------------------------------------------------------

_CP_HEADS = ("seq", "name", "created (UTC)", "size", "data")


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking a cut with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))


SESSION_SORT_KEYS = {
    "id": lambda i: i.session_id,
    "checkpoints": lambda i: i.checkpoints,
    "seq": lambda i: i.last_seq,
    "first": lambda i: i.created_at,
    "last": lambda i: i.updated_at,
    "name": lambda i: i.last_name or "",
}


@dataclass
class Output:
    """Where and how a command prints: JSON or human text, colour only on a terminal.

    Attributes:
        json_mode: Print machine-readable JSON instead of tables.
    """

    json_mode: bool = False

    @property
    def out(self) -> Console:
        """A console on the current stdout (looked up per call, for CliRunner)."""
        return Console(file=sys.stdout, highlight=False, soft_wrap=False)

    @property
    def err(self) -> Console:
        """A console on the current stderr."""
        return Console(file=sys.stderr, highlight=False, soft_wrap=False)

    def echo(self, text: str = "") -> None:
        """Print a plain line to stdout (control characters escaped)."""
        click.echo(safe_lines(text))

    def note(self, text: str) -> None:
        """Print a remark for people on stderr (never mixed into JSON or exports)."""
        click.echo(safe_lines(text), err=True)

    def json(self, value: Any) -> None:
        """Print ``value`` as indented JSON on stdout."""
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))

    def sessions(self, infos: Sequence[SessionInfo], leases: dict[str, Any] | None = None) -> None:
        """Print sessions as a table (or JSON); ``leases`` by session id adds their leases."""
        from .lease import lease_cell, lease_dict

        leases = leases or {}
        if self.json_mode:
            self.json(
                [{**session_dict(i), "lease": lease_dict(leases.get(i.session_id))} for i in infos]
            )
            return
        if not infos:
            self.note("no sessions")
            return
        rows = [
            (
                info.session_id,
                str(info.checkpoints),
                str(info.last_seq),
                short_time(info.created_at)[:16],
                short_time(info.updated_at)[:16],
                info.last_name or "-",
            )
            for info in infos
        ]
        heads = ("session", "held", "seq", "first (UTC)", "last (UTC)", "last name")
        caps = {5: 16}
        if any(lease.owner is not None for lease in leases.values()):
            # Only when something is (or was until it expired) leased: the table stays
            # as it was for stores that never use leases.
            heads += ("lease (UTC)",)
            rows = [(*row, lease_cell(leases.get(row[0]))) for row in rows]
            caps[6] = 32
        # Ids fold onto more lines rather than lose characters: they get copied.
        self.table(heads, rows, flex=0, caps=caps, right=(1, 2), fold=True)

    def checkpoints(self, cps: Sequence[Checkpoint]) -> None:
        """Print checkpoints as a table with a data preview (or as export-format JSON)."""
        if self.json_mode:
            self.json([cp.to_dict() for cp in cps])
            return
        rows = [
            (
                str(cp.seq),
                cp.name,
                short_time(cp.timestamp),
                str(payload_size(cp)),
                compact_json(cp.data),
            )
            for cp in cps
        ]
        heads = ("seq", "name", "created (UTC)", "size", "data")
        self.table(heads, rows, flex=4, caps={1: 24}, right=(0, 3))

    def table(
        self,
        heads: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        flex: int,
        caps: dict[int, int],
        right: Sequence[int] = (),
        fold: bool = False,
    ) -> None:
        """Print a table that fits the console: column ``flex`` gets what is left.

        Other columns keep their natural width (at most ``caps[i]``, cut with an
        ellipsis); the flexible one is folded (``fold``) or cut to the rest of the line.
        """
        console = self.out
        rows = [[safe(cell) for cell in row] for row in rows]
        widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(heads)]
        for i, cap in caps.items():
            widths[i] = min(widths[i], cap)
        fixed = sum(w for i, w in enumerate(widths) if i != flex)
        widths[flex] = max(8, min(widths[flex], console.width - fixed - 3 * (len(heads) - 1)))
        table = _table()
        for i, (head, width) in enumerate(zip(heads, widths, strict=True)):
            folding = fold and i == flex
            table.add_column(
                head,
                justify="right" if i in right else "left",
                no_wrap=not folding,
                overflow="fold" if folding else "ellipsis",
                width=width,
            )
        for row in rows:
            cells = list(row)
            if not (fold and flex is not None):
                cells[flex] = clip(cells[flex], widths[flex])
            # Text, not str: "[red]" in an agent's session id is not rich markup.
            table.add_row(*(Text(cell) for cell in cells))
        console.print(table)

    def checkpoint(self, cp: Checkpoint) -> None:
        """Print one checkpoint: its fields, then data and metadata pretty-printed."""
        if self.json_mode:
            self.json(cp.to_dict())
            return
        console = self.out
        for label, value in (
            ("id", cp.id),
            ("session", cp.session_id),
            ("seq", str(cp.seq)),
            ("name", cp.name),
            ("created", cp.timestamp.isoformat()),
            ("size", f"{payload_size(cp)} bytes"),
        ):
            # Fold (not cut) at the console's width: ids and names get copied.
            console.print(f"{label:<9}{safe(value)}", overflow="fold", markup=False)
        for label, value in (("data", cp.data), ("metadata", cp.metadata)):
            self.echo(f"{label}:")
            self.pretty_json(value)

    def pretty_json(self, value: Any) -> None:
        """Print JSON indented; syntax-coloured only when stdout is a terminal."""
        text = safe_lines(json.dumps(value, indent=2, ensure_ascii=False))
        console = self.out
        if console.is_terminal:
            console.print(Syntax(text, "json", background_color="default", word_wrap=True))
        else:
            self.echo(text)

    def key_values(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Print ``(check, value, status)`` rows, e.g. the doctor's report."""
        table = _table()
        table.add_column("check", no_wrap=True)
        table.add_column("value", overflow="fold", ratio=1)
        table.add_column("", no_wrap=True)
        styles = {"ok": "green", "PROBLEM": "bold red", "warn": "yellow", "": ""}
        for check, value, status in rows:
            style = styles.get(status, "")
            table.add_row(Text(safe(check)), Text(safe(value)), Text(status, style=style or ""))
        self.out.print(table)

    @contextmanager
    def progress(self, description: str, total: float | None) -> Iterator[Any]:
        """Yield an ``advance(completed=None, step=1)`` callable drawing a bar on stderr.

        On anything but a terminal (pipes, files, CliRunner) nothing is drawn.
        """
        console = self.err
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        with progress:
            # The description names a session: escaped, and not read as rich markup.
            task = progress.add_task(markup_escape(safe(description)), total=total, count="")
            done = 0

            def advance(completed: float | None = None, step: int = 1) -> None:
                nonlocal done
                done += step
                if completed is None:
                    progress.update(task, advance=step, count=f"{done:,}")
                else:
                    progress.update(task, completed=completed, count=f"{done:,}")

            yield advance

    def removal(self, removed: Sequence[tuple[str, int]], dry_run: bool) -> None:
        """Print the sessions a ``delete`` or ``prune`` removed (or would remove)."""
        if self.json_mode:
            self.json(
                {
                    "dry_run": dry_run,
                    "sessions": [{"session_id": s, "checkpoints": n} for s, n in removed],
                }
            )
            return
        verb = "would delete" if dry_run else "deleted"
        if not removed:
            self.echo("no sessions to delete")
            return
        for session_id, n in removed:
            self.echo(f"{verb} session {session_id!r} ({plural(n, 'checkpoint')})")
        if len(removed) > 1:
            total = sum(n for _, n in removed)
            self.echo(f"{verb} {plural(len(removed), 'session')}, {plural(total, 'checkpoint')}")


def fit_stdout(json_mode: bool) -> str:
    r"""Let every stored character through a stdout that cannot encode it.

    Under ``PYTHONIOENCODING=ascii`` or a Latin-1 locale the first non-ASCII name or
    preview raised ``UnicodeEncodeError`` ("please report it"), mid-listing in
    ``list``. Text escapes what the terminal cannot show; JSON, whose escapes must be
    ``\uXXXX``, goes out as UTF-8, JSON's own encoding. Called once per command.

    Returns:
        The character of the rule under the heading: a box-drawing line where the
        terminal has it, else ``-``.
    """
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding == "utf8" or not isinstance(stream, io.TextIOWrapper):
        return "\u2500"
    stream.flush()
    if json_mode:
        stream.reconfigure(encoding="utf-8")
    else:
        stream.reconfigure(errors="backslashreplace")
    return "-"
