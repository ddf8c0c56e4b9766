"""``breakpilot-store``: the operators' CLI (also ``python -m breakpilot_store``).

Thin on purpose: parse the arguments, make one or a few store calls, hand the result
to :mod:`breakpilot_store.cli.format`. Read-only commands open the database with
``readonly=True, migrate=False`` (SQLite ``mode=ro``), so they never take a write lock
and never change the schema. Exit codes: 0 success, 1 a user or data error (one line on
stderr; ``--debug`` adds the traceback), 2 a usage error.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sqlite3
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..codec import check_key
from ..core import counters, health, leases, side_rows
from ..core.document import read_document
from ..core.repository import counters_out_of_step
from ..engine import MIN_SQLITE, create_store_engine, resolve_url, sqlite_path
from ..errors import (
    BreakpilotStoreError,
    CheckpointValueError,
    DatabaseError,
    ImportFormatError,
    SchemaVersionError,
    SessionLeasedError,
    StoreUnavailableError,
    UnknownSessionError,
)
from ..migrate import (
    HEAD,
    KNOWN_REVISIONS,
    current_revision,
    describe,
    ensure_schema,
    read_revision,
)
from ..opening import open_snapshot_if_needed
from ..store import CheckpointStore
from ..translate import translate
from .format import (
    DURATION,
    SESSION_SORT_KEYS,
    SINCE,
    Output,
    fit_stdout,
    human_bytes,
    plural,
    safe,
    seq_ranges,
)
from .output_file import check_output_path, open_output
from .waiting import lock_wait_notice

#: Seconds a command waits for another connection's lock (tests lower it).
BUSY_TIMEOUT = 30.0

#: Where ``demo`` writes unless ``--db`` says otherwise (never the production store).
DEMO_DB = "breakpilot-demo.db"

#: A WAL file bigger than this is worth a warning in ``doctor``.
LARGE_WAL = 64 * 1024 * 1024


@dataclass
class Options:
    """The global options, shared by every command through the click context."""

    db: str | None = None
    json: bool = False
    debug: bool = False
    output: Output = field(default_factory=Output)


pass_options = click.make_pass_decorator(Options)


def quiet_broken_pipe() -> None:
    """End like a Unix tool whose reader went away (``... | head``): silently, status 141.

    Further writes to stdout go nowhere (Python would otherwise report the pipe again
    when it flushes stdout at exit); 141 is 128 + SIGPIPE, what a shell reports for
    ``seq 1000000 | head`` under ``pipefail``.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stand-in stdout (tests) has no descriptor
        pass
    raise click.exceptions.Exit(141)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) if str(exc).strip() else type(exc).__name__
    return safe(text)  # messages quote ids and paths: no escape sequence gets through


class _ClosedStdout(io.TextIOBase):
    """Standard output when file descriptor 1 is closed: every write is an error.

    Python then sets ``sys.stdout`` to ``None``, and click's ``echo`` writes nothing
    without a word: ``sessions >&-`` exited 0 having shown nothing (a script's check
    "succeeded"), and ``export >&-`` died on ``None.write``. Now a command that writes
    there fails with one ``Error:`` line; one that writes nothing there still works.
    """

    def writable(self) -> bool:  # noqa: D102
        return True

    def write(self, text: str) -> int:  # noqa: D102
        raise OSError(errno.EBADF, "standard output is closed (file descriptor 1)")

    @property
    def buffer(self) -> Any:  # noqa: D102 - export writes bytes here
        return self

    def fileno(self) -> int:  # noqa: D102
        raise OSError(errno.EBADF, "standard output is closed (file descriptor 1)")


class StoreGroup(click.Group):
    """A click group that turns store and I/O errors into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        if sys.stdout is None:  # started with file descriptor 1 closed (``>&-``)
            sys.stdout = _ClosedStdout()
        try:
            with lock_wait_notice():
                return super().invoke(ctx)
        except BrokenPipeError:
            quiet_broken_pipe()
        except KeyboardInterrupt:
            # Ctrl-C mid-command (`watch`, `list --follow` and `ui` take it as their end,
            # status 0, themselves): what was running rolled back; 128 + SIGINT, as a shell.
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (BreakpilotStoreError, OSError, SQLAlchemyError) as exc:
            if ctx.params.get("debug"):
                traceback.print_exception(exc)
            hint = " (--force writes anyway)" if isinstance(exc, SessionLeasedError) else ""
            click.echo(f"Error: {_one_line(exc)}{hint}", err=True)
            ctx.exit(1)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and exits: click reports them
        except Exception as exc:  # noqa: BLE001 - the promise: one line, never a traceback
            if ctx.params.get("debug"):
                traceback.print_exception(exc)
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                "(--debug shows the traceback; please report it)",
                err=True,
            )
            ctx.exit(1)


# -- options every command also accepts after its name --------------------------------


def _set_json(ctx: click.Context, _param: Any, value: bool) -> None:
    if value:
        ctx.ensure_object(Options).json = True


def _set_db(ctx: click.Context, _param: Any, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Options).db = value


def common(func: Any) -> Any:
    """Let ``--db`` and ``--json`` also follow the command name."""
    func = click.option(
        "--json", is_flag=True, expose_value=False, callback=_set_json, help="Print JSON."
    )(func)
    return click.option(
        "--db",
        metavar="PATH|URL",
        expose_value=False,
        callback=_set_db,
        help="Same as the global --db.",
    )(func)


dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Show what would be removed; change nothing."
)
force_option = click.option(
    "--force", is_flag=True, help="Write even if an agent holds the session's lease."
)


@click.group(
    cls=StoreGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)
@click.option(
    "--db",
    metavar="PATH|URL",
    help="SQLite file or database URL (default: $BREAKPILOT_STORE_URL, else the per-user store).",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="breakpilot-store")
@click.pass_context
def cli(ctx: click.Context, db: str | None, json_mode: bool, debug: bool) -> None:
    """Inspect and look after breakpilot_store checkpoint databases."""
    ctx.obj = Options(db=db, json=json_mode, debug=debug)
    fit_stdout(json_mode)


def _json(opts: Options) -> Output:
    opts.output.json_mode = opts.json
    return opts.output


# -- opening stores ---------------------------------------------------------------------


def _require_file(url: URL) -> None:
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreUnavailableError(
            f"no database at {path} (pass --db PATH|URL or set BREAKPILOT_STORE_URL)"
        )


def open_read(target: str | URL | None) -> CheckpointStore:
    """Open an existing store read-only: no write lock, no schema change, ever."""
    url = resolve_url(target)
    _require_file(url)
    return CheckpointStore(url, readonly=True, migrate=False, busy_timeout=BUSY_TIMEOUT)


def open_write(target: str | URL | None, *, create: bool = False) -> CheckpointStore:
    """Open a store for writing; only ``create=True`` may create its schema.

    No command upgrades an existing database's schema but ``db upgrade`` (an ``import``
    did, under agents still running the old code). An in-memory database is refused:
    it would end with the command, and everything written with it.
    """
    url = resolve_url(target)
    if url.get_backend_name() == "sqlite" and sqlite_path(url) is None:
        raise click.UsageError(
            f"{describe(url)} is an in-memory database: what this command writes would "
            "be gone when it exits; give a file path or a server URL"
        )
    if not create:
        _require_file(url)
        return CheckpointStore(url, migrate=False, busy_timeout=BUSY_TIMEOUT)
    try:
        return CheckpointStore(url, migrate=False, busy_timeout=BUSY_TIMEOUT)
    except SchemaVersionError as exc:
        if exc.revision is not None:
            raise  # an older schema: the operator upgrades it, with every agent
    return CheckpointStore(url, migrate=True, busy_timeout=BUSY_TIMEOUT)


def _where(store: CheckpointStore) -> str:
    return describe(store.url)


def _session_or_fail(store: CheckpointStore, session: str) -> Any:
    info = store.session_info(session)
    if info is None:
        raise UnknownSessionError(f"no session {session!r} in {_where(store)}")
    return info


# -- reading ----------------------------------------------------------------------------


@cli.command()
@click.option("--prefix", help="Only sessions whose id starts with this.")
@click.option("--idle-for", type=DURATION, help="Only sessions with no write for this long.")
@click.option(
    "--sort",
    type=click.Choice(list(SESSION_SORT_KEYS)),
    default="id",
    show_default=True,
    help="Order by id, checkpoints held, last seq, first or last activity, last name.",
)
@click.option("--reverse", "-r", is_flag=True, help="Reverse the order.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@common
@pass_options
def sessions(
    opts: Options,
    prefix: str | None,
    idle_for: Any,
    sort: str,
    reverse: bool,
    limit: int | None,
) -> None:
    """One row per session: checkpoints held, last seq, activity, last name."""
    from .lease import all_leases

    with open_read(opts.db) as store:
        infos = store.list_sessions(prefix=prefix, idle_for=idle_for)
        held = all_leases(store)
    infos.sort(key=SESSION_SORT_KEYS[sort], reverse=reverse)
    _json(opts).sessions(infos[:limit] if limit else infos, held)


@cli.command("list")
@click.argument("session")
@click.option("--name", help="Only checkpoints with this name.")
@click.option("--since", type=SINCE, help="Only newer ones: a duration (2h) or ISO time.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0 for all."
)
@click.option(
    "--follow", "-f", is_flag=True, help="Oldest first, then print new ones as they land."
)
@common
@pass_options
def list_(
    opts: Options, session: str, name: str | None, since: Any, limit: int, follow: bool
) -> None:
    """The checkpoints of SESSION, newest first (streamed: the first line comes at once)."""
    from .listing import follow as follow_session
    from .listing import stream_list, until_interrupted

    out = _json(opts)
    # More than any session can hold means all (bound as it was, a 30-digit limit
    # overflowed SQLite's integer: an "unexpected OverflowError").
    limit = min(limit, 2**62)
    if name is not None:
        check_key(name, "--name")  # non-UTF-8 argv: one Error: line, not a traceback
    with open_read(opts.db) as store:
        info = _session_or_fail(store, session)
        top = stream_list(
            store,
            out,
            session,
            info.last_seq,
            info.checkpoints,
            name=name,
            since=since,
            limit=limit,
            json_mode=opts.json and not follow,
            oldest_first=follow,
            json_lines=opts.json and follow,
        )
        if follow:
            after = info.last_seq if top is None else max(top, info.last_seq)
            with until_interrupted():
                follow_session(
                    store, out, session, after, json_mode=opts.json, interval=0.5, name=name
                )


@cli.command()
@click.argument("checkpoint_id", metavar="ID")
@common
@pass_options
def show(opts: Options, checkpoint_id: str) -> None:
    """One checkpoint (ID is SESSION:SEQ) with its data and metadata."""
    with open_read(opts.db) as store:
        cp = store.get(checkpoint_id)
        if cp is None:
            raise CheckpointValueError(
                f"no checkpoint {checkpoint_id!r} in {_where(store)} (ids are SESSION:SEQ)"
            )
    _json(opts).checkpoint(cp)


# -- moving data ------------------------------------------------------------------------


@cli.command()
@click.argument("session")
@click.option(
    "-o", "--output", "out_path", type=click.Path(dir_okay=False), help="File (default stdout)."
)
@click.option("--force", is_flag=True, help="Replace an existing SQLite database file.")
@common
@pass_options
def export(opts: Options, session: str, out_path: str | None, force: bool) -> None:
    """Write SESSION in the seed's JSON export format, streaming."""
    out = _json(opts)
    if out_path not in (None, "-"):
        check_output_path(Path(out_path), resolve_url(opts.db), force=force)
    with open_read(opts.db) as store:
        info = _session_or_fail(store, session)
        if out_path in (None, "-"):
            stream = sys.stdout
            binary = getattr(stream, "buffer", None)
            if binary is None:  # a text-only stand-in for stdout
                for chunk in store.export_chunks(session):
                    stream.write(chunk)
            else:
                # The store renders UTF-8: written as it is, with no decode and encode.
                stream.flush()
                for piece in store.export_bytes(session):
                    binary.write(piece)
            if stream.isatty():
                stream.write("\n")
            stream.flush()
            return
        target = Path(out_path)
        written = 0
        with (
            open_output(target) as f,
            out.progress(f"export {session}", info.checkpoints) as advance,
        ):

            def counted(batch: int) -> None:
                nonlocal written
                written += batch
                advance(step=batch)

            for piece in store.export_bytes(session, on_batch=counted):
                f.write(piece)
    if opts.json:
        out.json({"session_id": session, "exported": written, "file": str(target)})
        return
    out.note(f"exported {plural(written, 'checkpoint')} of session {session!r} to {target}")


class PieceStream(io.RawIOBase):
    """A readable binary stream over an iterator of byte pieces (an export's)."""

    def __init__(self, pieces: Any) -> None:
        self._pieces = iter(pieces)
        self._pending = memoryview(b"")

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._pending = memoryview(piece).cast("B")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _peek(file: Any) -> bytes:
    """Look at the start of a binary stream without consuming it."""
    if hasattr(file, "peek"):
        return file.peek(64)[:64]
    if file.seekable():
        start = file.tell()
        head = file.read(64)
        file.seek(start)
        return head
    return b""


def _size(file: Any) -> int | None:
    """The size of a regular file (for the progress bar); ``None`` for pipes."""
    try:
        return os.fstat(file.fileno()).st_size if file.seekable() else None
    except (OSError, AttributeError):
        return None


class InputFile(click.File):
    """``click.File`` whose ``-`` on a closed stdin is a usage error, not a traceback.

    click raises a bare ``RuntimeError`` ("Was not able to determine binary stream for
    sys.stdin") when the process has no stdin (``import s - <&-``, a daemon's exec).
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: D102
        try:
            return super().convert(value, param, ctx)
        except RuntimeError as exc:
            self.fail(f"{value!r}: there is no stdin to read ({exc})", param, ctx)


@cli.command("import")
@click.argument("session")
@click.argument("file", type=InputFile("rb"))
@force_option
@common
@pass_options
def import_(opts: Options, session: str, file: Any, force: bool) -> None:
    """Import FILE (an export; - for stdin) into SESSION, streaming, all or nothing."""
    out = _json(opts)
    name = getattr(file, "name", "-")
    head = _peek(file).lstrip(b" \t\r\n")
    if head and not head.startswith(b"["):
        raise ImportFormatError(f"{name} is not an export: it must be a JSON array of checkpoints")
    size = _size(file)
    seen = 0
    with open_write(opts.db, create=True) as store, out.progress(f"import {session}", size) as bar:

        def on_entry() -> None:
            nonlocal seen
            seen += 1
            bar(completed=file.tell() if size else None)

        try:
            written = store.import_checkpoints(
                session, read_document(file), on_entry=on_entry, force=force
            )
        except ImportFormatError as exc:
            raise ImportFormatError(f"{name}: {exc}") from exc
    if opts.json:
        out.json({"session_id": session, "entries": seen, "written": written})
        return
    already = f"; {seen - written} were already there" if seen > written else ""
    out.echo(f"imported {plural(written, 'checkpoint')} into session {session!r}{already}")


@cli.command()
@click.argument("checkpoint_id", metavar="CHECKPOINT_ID")
@click.argument("new_session")
@common
@pass_options
def fork(opts: Options, checkpoint_id: str, new_session: str) -> None:
    """Copy a session's history up to CHECKPOINT_ID (SESSION:SEQ) into NEW_SESSION."""
    with open_write(opts.db) as store:
        copied = store.fork_session(checkpoint_id, new_session)
    if opts.json:
        _json(opts).json({"from": checkpoint_id, "session_id": new_session, "copied": copied})
        return
    _json(opts).echo(
        f"forked {plural(copied, 'checkpoint')} up to {checkpoint_id} into session {new_session!r}"
    )


@cli.command()
@click.option("--from", "source", metavar="URL", help="Source store (default: the --db store).")
@click.option("--to", "target", metavar="URL", required=True, help="Destination store.")
@click.option("--prefix", help="Only sessions whose id starts with this.")
@force_option
@common
@pass_options
def copy(opts: Options, source: str | None, target: str, prefix: str | None, force: bool) -> None:
    """Copy every session from one store to another (e.g. SQLite to PostgreSQL)."""
    src_url = resolve_url(source if source is not None else opts.db)
    dst_url = resolve_url(target)
    if describe(src_url) == describe(dst_url):
        raise CheckpointValueError(f"--from and --to are the same database ({describe(dst_url)})")
    out = _json(opts)
    results = []
    with open_read(src_url) as src, open_write(dst_url, create=True) as dst:
        infos = src.list_sessions(prefix=prefix)
        total = sum(info.checkpoints for info in infos)
        with out.progress("copy", total) as advance:
            for info in infos:
                sid = info.session_id
                existing = dst.session_info(sid)
                before = existing.checkpoints if existing is not None else 0
                sent = 0

                def counted() -> None:
                    nonlocal sent
                    sent += 1
                    advance()

                # The export form, streamed: it carries each row's origin_id, so rows
                # the source imported keep their provenance (and re-imports of their
                # documents stay no-ops on the target).
                with contextlib.closing(src.export_bytes(sid)) as pieces:
                    written = dst.import_checkpoints(
                        sid,
                        read_document(PieceStream(pieces)),
                        on_entry=counted,
                        min_last_seq=info.last_seq,
                        force=force,
                    )
                # The session's own times, not the copy's: a copied session is as
                # idle as its source (and a re-run that copies nothing changes nothing).
                created = info.created_at
                updated = info.updated_at
                if existing is not None:
                    created = min(created, existing.created_at)
                    updated = max(updated, existing.updated_at)
                dst.run(
                    lambda conn, sid=sid, c=created, u=updated: counters.set_times(conn, sid, c, u),
                    write=True,
                )
                after = dst.count(sid)
                if after != before + written or after < sent:
                    raise DatabaseError(
                        f"session {sid!r} did not verify after the copy: sent {sent}, "
                        f"the destination held {before} and now holds {after}"
                    )
                _copy_side_rows(src, dst, sid, created)
                results.append(
                    {"session_id": sid, "checkpoints": sent, "written": written, "held": after}
                )
    if opts.json:
        out.json({"from": describe(src_url), "to": describe(dst_url), "sessions": results})
        return
    for r in results:
        out.echo(
            f"copied session {r['session_id']!r}: {plural(r['checkpoints'], 'checkpoint')} "
            f"({r['written']} new), verified"
        )
    copied = sum(r["checkpoints"] for r in results)
    out.echo(
        f"copied {plural(len(results), 'session')} ({plural(copied, 'checkpoint')}) "
        f"from {describe(src_url)} to {describe(dst_url)}"
    )


def _copy_side_rows(src: CheckpointStore, dst: CheckpointStore, sid: str, created: Any) -> None:
    """Copy what the integrations keep beside ``sid``'s checkpoints, then verify it.

    A LangGraph thread's mapping and pending writes, an ADK session's row and its app
    and user state: without them the copy's checkpoints were there, but the saver and
    the ADK service found no thread and no session (and a saver refused to write on).
    """
    rows = src.run(lambda conn: side_rows.read(conn, sid))
    if rows is None or not any(rows.values()):
        return

    def write(conn: Any) -> None:
        counters.add_session(conn, sid, created)  # a thread with only pending writes
        side_rows.write(conn, sid, rows)

    dst.run(write, write=True)
    held = dst.run(lambda conn: side_rows.read(conn, sid))
    lacking = side_rows.differences(rows, held or {})
    if lacking:
        raise DatabaseError(
            f"session {sid!r} did not verify after the copy: the destination lacks "
            f"{', '.join(lacking)} (LangGraph or ADK rows)"
        )


# -- removing data ----------------------------------------------------------------------


def _need_yes(yes: bool, dry_run: bool, what: str) -> None:
    if not (yes or dry_run):
        raise click.UsageError(f"{what} deletes data: add --yes to confirm, or --dry-run first")


@cli.command()
@click.argument("session")
@click.option("--compress-after", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--max-checkpoints", type=click.IntRange(min=1), help="Hard cap to apply.")
@dry_run_option
@force_option
@common
@pass_options
def compress(
    opts: Options,
    session: str,
    compress_after: int,
    max_checkpoints: int | None,
    dry_run: bool,
    force: bool,
) -> None:
    """Apply the retention rule to SESSION now and print what it removed."""
    # Even with --dry-run the store runs the real DELETE and rolls it back, so this
    # command always needs a writable database (it writes nothing with --dry-run).
    with open_write(opts.db) as store:
        info = _session_or_fail(store, session)
        removed = store.compress(
            session,
            compress_after=compress_after,
            max_checkpoints=max_checkpoints,
            dry_run=dry_run,
            force=force,
        )
    out = _json(opts)
    if opts.json:
        out.json({"session_id": session, "dry_run": dry_run, "removed": removed})
        return
    if not removed:
        out.echo(f"nothing to remove: session {session!r} holds {info.checkpoints}")
        return
    verb = "would remove" if dry_run else "removed"
    seqs = seq_ranges(int(cid.rpartition(":")[2]) for cid in removed)
    out.echo(f"{verb} {plural(len(removed), 'checkpoint')} from session {session!r}: seq {seqs}")


@cli.command()
@click.argument("session")
@click.option("--yes", "-y", is_flag=True, help="Confirm the deletion.")
@dry_run_option
@force_option
@common
@pass_options
def delete(opts: Options, session: str, yes: bool, dry_run: bool, force: bool) -> None:
    """Delete SESSION and all of its checkpoints."""
    _need_yes(yes, dry_run, "delete")
    if dry_run:
        with open_read(opts.db) as store:
            removed = _session_or_fail(store, session).checkpoints
    else:
        with open_write(opts.db) as store:
            removed = store.delete_session(session, force=force)
    _json(opts).removal([(session, removed)], dry_run)


@cli.command()
@click.option("--idle-for", type=DURATION, required=True, help="E.g. 30d, 12h, 15m, 45s.")
@click.option("--prefix", help="Only sessions whose id starts with this.")
@click.option("--yes", "-y", is_flag=True, help="Confirm the deletion.")
@dry_run_option
@click.option("--force", is_flag=True, help="Also delete idle sessions that are leased.")
@common
@pass_options
def prune(
    opts: Options, idle_for: Any, prefix: str | None, yes: bool, dry_run: bool, force: bool
) -> None:
    """Delete every session with no write for longer than --idle-for.

    Sessions someone holds a live lease on are kept unless --force.
    """
    _need_yes(yes, dry_run, "prune")
    opener = open_read if dry_run else open_write
    with opener(opts.db) as store:
        removed = store.prune_sessions(idle_for, prefix=prefix, dry_run=dry_run, force=force)
    _json(opts).removal(removed, dry_run)


# -- schema and maintenance -------------------------------------------------------------


@cli.group()
def db() -> None:
    """Schema migrations (alembic), for teams that run them themselves."""


def _revision_status(revision: str | None) -> str:
    if revision == HEAD:
        return "head"
    if revision is None:
        return "empty"
    return "behind" if revision in KNOWN_REVISIONS else "newer"


@db.command()
@common
@pass_options
def upgrade(opts: Options) -> None:
    """Create the schema, or upgrade it to this version's head."""
    url = resolve_url(opts.db)
    engine = create_store_engine(url, busy_timeout=BUSY_TIMEOUT)
    try:
        before = read_revision(engine)
        ensure_schema(engine, url, migrate=True)
    except SQLAlchemyError as exc:
        raise translate(exc, describe(url)) from exc
    finally:
        engine.dispose()
    out = _json(opts)
    if opts.json:
        out.json({"database": describe(url), "from": before, "to": HEAD})
    elif before == HEAD:
        out.echo(f"{safe(describe(url))} is already at revision {HEAD} (head)")
    else:
        out.echo(f"upgraded {safe(describe(url))} from {before or 'an empty database'} to {HEAD}")


def _read_engine(target: str | None) -> tuple[URL, Any]:
    url = resolve_url(target)
    _require_file(url)
    engine = create_store_engine(url, readonly=True, busy_timeout=BUSY_TIMEOUT)
    # A read-only mount: read the file as a snapshot (as the store does).
    return url, open_snapshot_if_needed(engine, url, describe(url), BUSY_TIMEOUT)


@db.command()
@common
@pass_options
def current(opts: Options) -> None:
    """Print the database's schema revision and whether it is at head."""
    url, engine = _read_engine(opts.db)
    try:
        revision = read_revision(engine)
    except SQLAlchemyError as exc:
        raise translate(exc, describe(url)) from exc
    finally:
        engine.dispose()
    status = _revision_status(revision)
    out = _json(opts)
    if opts.json:
        out.json({"database": describe(url), "revision": revision, "head": HEAD, "status": status})
        return
    hint = {
        "head": "(head)",
        "empty": "(no schema: run `breakpilot-store db upgrade`)",
        "behind": f"(behind head {HEAD}: run `breakpilot-store db upgrade`)",
        "newer": f"(newer than this breakpilot-store, whose head is {HEAD})",
    }[status]
    out.echo(f"{revision or 'none'} {hint}")


@db.command()
@common
@pass_options
def check(opts: Options) -> None:
    """Fail unless the schema is at head and matches the code (alembic check)."""
    from alembic import command
    from alembic.util.exc import CommandError

    from ..migrate import alembic_config

    url, engine = _read_engine(opts.db)
    try:
        with engine.connect() as conn, conn.begin():
            revision = current_revision(conn)
            if revision != HEAD:
                # A newer revision cannot be upgraded to by this version: saying "run
                # db upgrade" sent the operator to a command that refuses it.
                remedy = (
                    "upgrade breakpilot-store to check it"
                    if _revision_status(revision) == "newer"
                    else "run `breakpilot-store db upgrade`"
                )
                raise SchemaVersionError(
                    f"{describe(url)} is at revision {revision or 'none'}, not head {HEAD}: "
                    f"{remedy}"
                )
            config = alembic_config(connection=conn)
            # alembic prints "No new upgrade operations detected." itself: kept out of
            # stdout, which holds this command's own answer (JSON with --json).
            config.stdout = io.StringIO()
            try:
                command.check(config)
            except CommandError as exc:
                raise SchemaVersionError(f"{describe(url)}: {_one_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise translate(exc, describe(url)) from exc
    finally:
        engine.dispose()
    out = _json(opts)
    if opts.json:
        out.json({"database": describe(url), "revision": revision, "head": HEAD, "ok": True})
        return
    out.echo(f"{safe(describe(url))}: schema at {HEAD} (head) and matching the code")


@cli.command()
@common
@pass_options
def doctor(opts: Options) -> None:
    """Check the database: versions, revision, integrity, sizes; exit 1 on problems."""
    url, engine = _read_engine(opts.db)
    try:
        rows = _diagnose(url, engine)
    except SQLAlchemyError as exc:
        raise translate(exc, describe(url)) from exc
    finally:
        engine.dispose()
    out = _json(opts)
    problems = [row for row in rows if row[2] == "PROBLEM"]
    if opts.json:
        out.json(
            {
                "database": describe(url),
                "ok": not problems,
                "checks": [{"check": c, "value": v, "status": s or "info"} for c, v, s in rows],
            }
        )
    else:
        out.key_values(rows)
        out.echo(f"{plural(len(problems), 'problem')} found" if problems else "no problems found")
    if problems:
        raise click.exceptions.Exit(1)


def _diagnose(url: URL, engine: Any) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    path = sqlite_path(url)
    if engine.dialect.name == "sqlite":
        ok = sqlite3.sqlite_version_info >= MIN_SQLITE
        rows.append(("SQLite library", sqlite3.sqlite_version, "ok" if ok else "PROBLEM"))
    if path is not None:
        wal = _wal_of(path)
        wal_size = wal.stat().st_size if wal.exists() else 0
        rows.append(("file", str(path), ""))
        rows.append(("file size", human_bytes(path.stat().st_size), ""))
        rows.append(("WAL size", human_bytes(wal_size), "warn" if wal_size > LARGE_WAL else "ok"))
    with engine.connect() as conn, conn.begin():
        revision = current_revision(conn)
        status = _revision_status(revision)
        rows.append(("schema revision", f"{revision or 'none'} ({status})", _ok(status == "head")))
        if engine.dialect.name == "sqlite":
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            mode = pragma("journal_mode")
            rows.append(("journal mode", str(mode), "ok" if mode == "wal" else "warn"))
            size, count, free = pragma("page_size"), pragma("page_count"), pragma("freelist_count")
            rows.append(("pages", f"{count} x {size} B, {free} free", ""))
            found = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check(20)")]
            rows.append(("integrity_check", "; ".join(found), _ok(found == ["ok"])))
            bad_fk = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            rows.append(("foreign_key_check", f"{len(bad_fk)} orphan rows", _ok(not bad_fk)))
        else:
            rows.append(("server", str(conn.exec_driver_sql("SELECT version()").scalar()), ""))
        if status == "head":
            n_sessions = conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar()
            n_cps = conn.exec_driver_sql("SELECT count(*) FROM checkpoints").scalar()
            rows.append(("contents", f"{n_sessions} sessions, {n_cps} checkpoints", ""))
            off = counters_out_of_step(conn)
            rows.append(("session counters", f"{off} out of step", _ok(off == 0)))
            bad_rows, bad_sessions = health.unreadable(conn)
            rows.append(("unreadable checkpoints", health.describe(bad_rows), _ok(not bad_rows)))
            rows.append(
                ("unreadable sessions", health.describe(bad_sessions), _ok(not bad_sessions))
            )
            # A hand-edited lease: safe, but PostgreSQL's creates take the slow path.
            off = leases.mirrors_out_of_step(conn)
            rows.append(("session lease tokens", f"{off} out of step", "ok" if not off else "warn"))
    return rows


def _ok(good: bool) -> str:
    return "ok" if good else "PROBLEM"


@cli.command()
@common
@pass_options
def vacuum(opts: Options) -> None:
    """Rebuild the database file compactly and truncate the WAL (takes the write lock)."""
    with open_write(opts.db) as store:
        path = sqlite_path(store.url)
        before = _disk_size(path)
        _vacuum(store)
        after = _disk_size(path)
    out = _json(opts)
    if opts.json:
        out.json({"database": _where(store), "bytes_before": before, "bytes_after": after})
    elif path is None:
        out.echo(f"vacuumed {safe(_where(store))}")
    else:
        sizes = f"{human_bytes(before)} -> {human_bytes(after)}"
        out.echo(f"vacuumed {safe(str(path))}: {sizes} (file + WAL)")


def _disk_size(path: Path | None) -> int | None:
    if path is None:
        return None
    return sum(p.stat().st_size for p in (path, _wal_of(path)) if p.exists())


def _wal_of(path: Path) -> Path:
    """The database's WAL file: beside the file a symlink points at, where SQLite puts it.

    (Looked for beside the link, a 4 MB WAL read as 0 B and the large-WAL warning
    could never fire.)
    """
    return Path(f"{path.resolve()}-wal")


def _vacuum(store: CheckpointStore) -> None:
    engine = store.engine
    try:
        if engine.dialect.name == "sqlite":
            # VACUUM cannot run inside a transaction: use the bare driver connection,
            # which the engine keeps in autocommit (isolation_level=None).
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("VACUUM")
            finally:
                raw.close()
            store.wal_checkpoint("TRUNCATE")
        else:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("VACUUM (ANALYZE) sessions, checkpoints")
    except sqlite3.Error as exc:
        raise translate(_wrap(exc), _where(store)) from exc
    except SQLAlchemyError as exc:
        raise translate(exc, _where(store)) from exc


def _wrap(exc: Exception) -> SQLAlchemyError:
    from sqlalchemy.exc import DBAPIError

    return DBAPIError(None, None, exc)


# -- the demo ---------------------------------------------------------------------------


@cli.command()
@click.option("--steps", type=click.IntRange(2, 100), default=8, show_default=True)
@click.option("--kill-after", type=click.IntRange(1, 99), default=4, show_default=True)
@click.option("--step-delay", type=click.FloatRange(0, 10), default=0.3, hidden=True)
@common
@pass_options
def demo(opts: Options, steps: int, kill_after: int, step_delay: float) -> None:
    """Watch an agent get SIGKILLed and resume from its last checkpoint."""
    from .demo import run_demo

    if kill_after >= steps:
        raise click.BadParameter("must be less than --steps", param_hint="--kill-after")
    _json(opts)
    run_demo(opts.db or DEMO_DB, opts.output, steps, kill_after, step_delay, open_read)


# Commands kept in modules of their own; importing them adds them to ``cli``.
from . import diff, watch, webview  # noqa: E402, F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (the ``breakpilot-store`` console script)."""
    cli.main(args=argv, prog_name="breakpilot-store")
