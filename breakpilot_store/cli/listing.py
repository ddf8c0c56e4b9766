"""``list`` (streamed, with ``--follow``) and ``watch``: checkpoints as they are and as they land.

``list`` prints its first line as soon as the database yields the first row and holds
one batch of rows at a time, whatever the session's size. ``watch`` (and ``list
--follow``) then look again every ``interval`` seconds, each look one short read
transaction (so a watcher never pins SQLite's WAL), and print what landed since, by
seq. Seqs are never reused, so ``clear()`` and compression cannot make it print a
checkpoint twice or skip one; a session deleted and begun again is noticed (its last
seq goes down) and followed from its new start.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ..core import browse
from ..store import CheckpointStore
from .format import Output, fit_stdout
from .lines import LineFormat, json_item, json_line

#: Rows read before the first line is printed, to size the name column.
FIRST_ROWS = 200


def _write(lines: Iterator[str] | Sequence[str]) -> None:
    write = sys.stdout.write
    for line in lines:
        write(line)
        write("\n")


def stream_list(
    store: CheckpointStore,
    out: Output,
    session: str,
    last_seq: int,
    held: int,
    *,
    name: str | None,
    since: datetime | None,
    limit: int,
    json_mode: bool,
    oldest_first: bool = False,
    json_lines: bool = False,
) -> int | None:
    """Print a session's checkpoints as they are read; return the highest seq printed.

    Args:
        store: An open store.
        out: The CLI's output.
        session: The session.
        last_seq: Its last seq (the seq column's width).
        held: How many checkpoints it holds (for the footer).
        name: Only this name.
        since: Only those created after this.
        limit: At most this many (0: all).
        json_mode: An indented JSON array instead of lines.
        oldest_first: Seq order (``--follow``: new lines then continue downwards).
        json_lines: One JSON object per line (``--follow --json``, as ``watch --json``).
    """
    top: int | None = None
    printed = 0
    rule = fit_stdout(json_mode or json_lines)

    def read(conn: Any) -> Any:
        newest_first = not oldest_first or bool(limit)
        stream = browse.stream_rows(
            conn, session, name=name, after=since, newest_first=newest_first, limit=limit or None
        )
        # Closed here, inside the transaction, whatever happens (a reader that went
        # away: ``| head``): left to the collector, its cursor was closed after the
        # connection, and SQLAlchemy printed a traceback on stderr.
        with contextlib.closing(stream):
            show(stream)

    def show(rows: Any) -> None:
        nonlocal top, printed
        if oldest_first and limit:  # the newest ``limit``, shown in seq order
            rows = iter(list(rows)[::-1])
        first = list(itertools.islice(rows, FIRST_ROWS))
        if not first:
            if json_mode:
                _write(["[]"])
            return
        if json_lines:
            render = json_line
            sep = "\n"
        elif json_mode:
            sys.stdout.write("[\n")
            render = json_item
            sep = ",\n"
        else:
            fmt = LineFormat.for_rows(last_seq, first, out.out.width)
            _write(fmt.header(rule))
            render = fmt.line
            sep = "\n"
        write = sys.stdout.write
        # Written a batch of lines at a time: one write per line was ~15% of a listing.
        source = itertools.chain(first, rows)
        while batch := list(itertools.islice(source, FIRST_ROWS)):
            if printed:
                write(sep)
            write(sep.join([render(row) for row in batch]))
            printed += len(batch)
            high = max(batch[0][1], batch[-1][1])
            top = high if top is None or high > top else top
        write("\n]\n" if json_mode and not json_lines else "\n")

    store.run(read)
    sys.stdout.flush()
    if not printed and not (json_mode or json_lines):
        out.note(f"no checkpoints match in session {session!r}")
    elif limit and printed == limit and not (json_mode or json_lines):
        filtered = name is not None or since is not None
        matched = (
            store.run(lambda conn: browse.count_matching(conn, session, name=name, after=since))
            if filtered
            else held
        )
        if matched > limit:
            what = (
                f"of the {matched} that match (the session holds {held})"
                if filtered
                else f"of {matched}"
            )
            out.note(f"newest {limit} shown {what}; --limit 0 for all")
    return top


@contextlib.contextmanager
def until_interrupted() -> Iterator[None]:
    """Take Ctrl-C as the normal end of what runs inside: quietly, status 0."""
    try:
        yield
    except KeyboardInterrupt:
        sys.stdout.flush()


def follow(
    store: CheckpointStore,
    out: Output,
    session: str,
    after_seq: int | None,
    *,
    json_mode: bool,
    interval: float,
    name: str | None = None,
) -> None:
    """Print each new checkpoint of ``session`` as it lands, until interrupted.

    Args:
        store: An open (read-only) store.
        out: The CLI's output.
        session: The session to follow (it may not exist yet).
        after_seq: Print checkpoints above this seq (``None``: from the session's
            current last seq).
        json_mode: JSON lines instead of text lines.
        interval: Seconds between looks.
        name: Only checkpoints with this name.
    """
    cursor = after_seq
    created: Any = None  # the session's created_at: another one means it began again
    fmt: LineFormat | None = None
    waiting_said = False
    while True:

        def look(conn: Any, cursor: int | None = cursor, created: Any = created) -> Any:
            state = browse.session_state(conn, session)
            if state is None:
                return None, [], False
            start = state[0] if cursor is None else cursor
            # Deleted and begun again: its seqs start over (noticed by its creation
            # time, or by a last seq below the one already printed).
            again = cursor is not None and (
                state[0] < cursor or (created is not None and state[2] != created)
            )
            if again:
                start = 0
            rows = browse.rows_after(conn, session, start) if start < state[0] else []
            return state, rows, again

        state, rows, again = store.run(look)
        if state is None:
            if not waiting_said:
                out.note(f"waiting for session {session!r} to appear (Ctrl-C to stop)")
                waiting_said = True
            cursor = 0  # print it from its first checkpoint when it comes
            created = None
        else:
            waiting_said = False
            if again:
                out.note(f"session {session!r} was deleted and begun again: from seq 1")
                cursor = 0
            created = state[2]
            if cursor is None:
                cursor = state[0]
            if rows:
                cursor = rows[-1][1]
                shown = [r for r in rows if name is None or r[2] == name]
                if json_mode:
                    _write(json_line(r) for r in shown)
                else:
                    if fmt is None:
                        fmt = LineFormat.for_rows(state[0], shown, out.out.width)
                    _write(fmt.line(r) for r in shown)
                sys.stdout.flush()
                if len(rows) >= 1000:
                    continue  # more waiting: no pause
        time.sleep(interval)
