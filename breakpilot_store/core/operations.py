"""The store's operations, written once for both fronts: validate -> ``run(conn)`` -> shape.

Each builder here checks its arguments (raising the typed errors before anything
touches the database) and returns an :class:`Operation`: whether it writes, and a
function of a connection that runs the statements and shapes the result, never
beginning, committing or rolling back. Who supplies the connection is the front's
business: :class:`~breakpilot_store.store.CheckpointStore` runs it in a transaction of its
own; :class:`~breakpilot_store.aio.AsyncCheckpointStore` runs writes inside a savepoint
of a transaction shared with the other writes waiting at that moment (group commit,
:mod:`breakpilot_store.core.group`), and reads on its threads or async driver. So an
operation must be safe to run inside a savepoint: a dry run rolls back a savepoint of its
own, never the connection's transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, text

from ..checkpoint import Checkpoint, split_id
from ..codec import check_key, check_size, encode_object, encode_object_utf8
from ..errors import (
    CheckpointTypeError,
    CheckpointValueError,
    SessionLeasedError,
    UnknownSessionError,
)
from . import bounds, checks, counters, leases
from . import repository as repo
from .document import Document
from .importer import ImportWriter
from .pipeline import pipelined
from .repository import SessionInfo
from .retention import retention_delete, retention_params
from .transfer import MAX_IMPORT_SEQ, ImportEntry, gc_paused, parse_entry

T = TypeVar("T")

#: How many import entries are checked against the database and inserted at a time.
#: (5,000 measured ~10% faster into PostgreSQL, for five times the entries in flight:
#: not kept, benchmarks/OPTIMISATIONS.md.)
IMPORT_BATCH = 1000

#: ... unless their JSON text (``data`` and ``metadata``, in characters) reaches this
#: first: what an import holds in memory is a few batches (see pipeline), so a batch of
#: large states must hold fewer of them (1,000 states of 1 MB would be 1 GB).
IMPORT_BATCH_TEXT = 8 * 1024 * 1024


class Operation(Generic[T]):
    """One public call's database work, ready to run on a connection.

    Attributes:
        run: ``run(conn) -> result``; ``conn`` is a SQLAlchemy ``Connection`` in a
            transaction (or a savepoint), or, when ``hot``, possibly SQLite's bare driver
            connection (:class:`~breakpilot_store.sqlite.fastpath.DriverConnection`).
        write: Whether it writes (a write transaction; refused by a read-only store).
        hot: Whether ``run`` only uses ``execute(statement, params)`` (the hot path's
            driver connection can run it).
        create: For a create, the operation itself (:class:`CreateOperation`, its
            values as attributes), so that a group of
            creates can be written in a few statements instead of a few each.
        read: For a point read, its one statement and parameters (a checkpoint row or
            none), so that PostgreSQL's hot path can send it alone, in one round trip
            (:mod:`breakpilot_store.postgres.fastpath`).
        attempt: For a write, ``(statements, accept)`` that PostgreSQL's hot path may
            send first as one transaction in one round trip (see ``CheckpointStore.run``).
    """

    __slots__ = ("run", "write", "hot", "create", "read", "attempt")

    def __init__(
        self,
        run: Callable[[Any], T],
        *,
        write: bool,
        hot: bool = False,
        create: CreateOperation | None = None,
        read: tuple[Any, dict[str, Any]] | None = None,
        attempt: Attempt | None = None,
    ) -> None:
        self.run = run
        self.write = write
        self.hot = hot
        self.create = create
        self.read = read
        self.attempt = attempt


#: A write tried first as one transaction on PostgreSQL's hot path: its statements
#: ``(statement, params)``, and a function of their rows that says whether they did
#: the whole write (see ``CheckpointStore.run``).
Attempt = tuple[Sequence[tuple[Any, dict[str, Any]]], Callable[[list[list[Any]]], bool]]


# -- create -----------------------------------------------------------------------------


#: How a row too large is named: the limit is on data and metadata together.
_BOTH = "data with metadata"


def encode_create(name: Any, data: Any, metadata: Any) -> tuple[str, str, str]:
    """Check a create's name and encode its values (the CPU work that grows with them).

    Returns:
        ``(name, data_text, metadata_text)``.
    """
    name = check_key(name, "name")
    data_text = encode_object(data, "data")
    metadata_text = encode_object(metadata, "metadata", optional=True)
    return (name, check_size(data_text, _BOTH, metadata_text), metadata_text)


def encode_create_utf8(name: Any, data: Any, metadata: Any) -> tuple[str, bytes, str]:
    """:func:`encode_create` with ``data`` as its UTF-8 bytes.

    For the sync hot paths, which bind them as they are (SQLite casts them to TEXT,
    PostgreSQL to JSON): a large state is then never decoded into a ``str`` that the
    driver encodes back (benchmarks/OPTIMISATIONS.md, issue 16).
    """
    name = check_key(name, "name")
    data_utf8 = encode_object_utf8(data, "data")
    metadata_text = encode_object(metadata, "metadata", optional=True)
    return (name, check_size(data_utf8, _BOTH, metadata_text), metadata_text)


def create(
    session_id: str,
    name: Any,
    data: Any,
    metadata: Any,
    compress_after: int | None,
    max_checkpoints: int | None,
    *,
    row_lock: bool,
    fence: Any = None,
) -> Operation[Checkpoint]:
    """A create for a session id and limits already checked (see :func:`check_create`).

    The values are encoded here, when the call is made (a snapshot of them), not when
    the operation runs. ``fence``: a lease holder's (its token must still be current;
    a holder whose renewal is due renews in this transaction).
    """
    name, data_text, metadata_text = encode_create(name, data, metadata)
    return CreateOperation(
        session_id,
        name,
        checks.now(),
        data_text,
        metadata_text,
        compress_after,
        max_checkpoints,
        fence,
        row_lock,
        fence is not None and fence.renewal_due(),
    )


class CreateOperation(Operation[Checkpoint]):
    """A create's :class:`Operation`, which also holds its checked and encoded values.

    One object per create, its ``run`` made only when something runs it: not a
    closure (ten cells), nor a ``functools.partial`` per create, nor its values in a
    tuple of their own. The async store's group path writes creates from these values
    alone (``op.create``, this object), and with a thousand agents in flight every
    object a waiting create holds is in every young garbage collection, and those
    that survive bring on the 50-100 ms full collections sooner
    (benchmarks/OPTIMISATIONS.md, the async API, second to fourth rounds).

    Attributes:
        fence: A lease holder's fence (``None``: a writer without a lease; see
            core/leases).
        row_lock: Lock the session's row first (PostgreSQL).
        renew: The holder's renewal is due: renew the lease in this transaction.
    """

    __slots__ = (
        "session_id",
        "name",
        "now",
        "data",
        "metadata",
        "compress_after",
        "max_checkpoints",
        "fence",
        "row_lock",
        "renew",
    )

    def __init__(
        self,
        session_id: str,
        name: str,
        now: datetime,
        data: str,
        metadata: str,
        compress_after: int | None,
        max_checkpoints: int | None,
        fence: Any,
        row_lock: bool,
        renew: bool,
    ) -> None:
        # (Operation.__init__ would assign ``run`` and ``create``, properties here.)
        self.write = True
        self.hot = True
        self.read = None
        self.attempt = None
        self.session_id = session_id
        self.name = name
        self.now = now
        self.data = data
        self.metadata = metadata
        self.compress_after = compress_after
        self.max_checkpoints = max_checkpoints
        self.fence = fence
        self.row_lock = row_lock
        self.renew = renew

    @property  # type: ignore[override]
    def create(self) -> CreateOperation:
        """The create's values: this object (a property: no reference to itself)."""
        return self

    def values(self) -> tuple[str, str, datetime, str, str, int | None, int | None, Any]:
        """``(session_id, name, now, data, metadata, compress_after, max_checkpoints, fence)``."""
        return (
            self.session_id,
            self.name,
            self.now,
            self.data,
            self.metadata,
            self.compress_after,
            self.max_checkpoints,
            self.fence,
        )

    @property  # type: ignore[override]
    def run(self) -> Callable[[Any], Checkpoint]:
        """``run(conn)``: the create's statements on ``conn`` (see :func:`create`)."""
        return functools.partial(_run_create, self)


def _run_create(op: CreateOperation, conn: Any) -> Checkpoint:
    """A create's work on ``conn`` (see :func:`create`)."""
    seq = repo.create_checkpoint(
        conn,
        op.session_id,
        op.name,
        op.now,
        op.data,
        op.metadata,
        compress_after=op.compress_after,
        max_checkpoints=op.max_checkpoints,
        row_lock=op.row_lock,
        cache=getattr(conn, "counter_cache", None),
        fence=op.fence,
        renew=op.renew,
    )
    if op.renew:
        op.fence.renewed()
    return created(op.session_id, seq, op.name, op.now, op.data, op.metadata)


def check_create(
    session_id: Any, compress_after: Any, max_checkpoints: Any
) -> tuple[str, int | None, int | None]:
    """Check a create's session id and retention limits."""
    return (
        check_key(session_id, "session_id"),
        checks.optional_limit(compress_after, "compress_after"),
        checks.optional_limit(max_checkpoints, "max_checkpoints"),
    )


def created(
    session_id: str,
    seq: int,
    name: str,
    now: datetime,
    data_text: str | bytes,
    metadata_text: str,
) -> Checkpoint:
    """The checkpoint a create returns: its values decode from the stored text on first use."""
    return Checkpoint._from_json(f"{session_id}:{seq}", name, now, data_text, metadata_text)


# -- other writes -----------------------------------------------------------------------


def compress(
    session_id: Any,
    compress_after: Any = 50,
    max_checkpoints: Any = None,
    dry_run: bool = False,
    force: bool = False,
) -> Operation[list[str]]:
    """Apply the retention rule to a session now; the ids removed (or that would be).

    Refused while another holder leases the session, unless ``force`` (or ``dry_run``,
    which writes nothing).
    """
    session_id = check_key(session_id, "session_id")
    compress_after = checks.optional_limit(compress_after, "compress_after")
    max_checkpoints = checks.optional_limit(max_checkpoints, "max_checkpoints")
    now = checks.now()

    def run(conn: Connection) -> list[str]:
        # A write even for a dry run, rolled back in a savepoint of its own: the rule is
        # run for real, and a read transaction must never be upgraded to a write.
        leases.check(conn, session_id, leases.FORCE if force or dry_run else None, now)
        trial = conn.begin_nested()
        try:
            if counters.fold(conn, session_id, now) is None:
                return []
            before = repo.held_seqs(conn, session_id)
            params = retention_params(session_id, len(before), compress_after, max_checkpoints)
            if params is not None:
                conn.execute(retention_delete(), params)
            after = set(repo.held_seqs(conn, session_id))
            removed = [seq for seq in before if seq not in after]
            if not dry_run:
                counters.adjust(conn, session_id, -len(removed), now)
        except BaseException:
            trial.rollback()
            raise
        if dry_run:
            trial.rollback()
        else:
            trial.commit()
        return [f"{session_id}:{seq}" for seq in removed]

    return Operation(run, write=True)


def clear(session_id: Any, fence: Any = None, force: bool = False) -> Operation[int]:
    """Delete every checkpoint of a session (numbering continues); how many.

    ``fence``: a lease holder's; ``force``: write whatever lease the session has.
    """
    session_id = check_key(session_id, "session_id")
    now = checks.now()

    def run(conn: Connection) -> int:
        leases.check(conn, session_id, leases.FORCE if force else fence, now)
        return repo.clear(conn, session_id, now)

    return Operation(run, write=True)


def delete_session(session_id: Any, where: str, force: bool = False) -> Operation[int]:
    """Delete a session, its checkpoints and its counter; how many checkpoints.

    Its lease row (and fencing token) stays. Refused while leased, unless ``force``.
    """
    session_id = check_key(session_id, "session_id")
    now = checks.now()

    def run(conn: Connection) -> int:
        leases.check(conn, session_id, leases.FORCE if force else None, now)
        removed = repo.delete_session(conn, session_id)
        if removed is None:
            raise UnknownSessionError(f"no session {session_id!r} in {where}")
        return removed

    return Operation(run, write=True)


def prune_sessions(
    idle_for: Any, prefix: Any = None, dry_run: bool = False, force: bool = False
) -> Operation[list[tuple[str, int]]]:
    """Delete every session idle for ``idle_for``: ``(session_id, deleted)`` for each.

    Sessions someone holds a live lease on are kept (a live lease is a live holder),
    unless ``force``.
    """
    idle_before = bounds.idle_cutoff(checks.now(), idle_for, positive=True)
    prefix = bounds.check_prefix(prefix)
    if prefix is bounds.NOTHING or idle_before is bounds.NOTHING:
        # No id starts so, or no session is idle that long (the same on both backends).
        return Operation(lambda conn: [], write=False)

    def run(conn: Connection) -> list[tuple[str, int]]:
        idle = repo.list_sessions(conn, prefix=prefix, idle_before=idle_before)
        if not force:
            held = {i.session_id for i in leases.list_leases(conn, checks.now()) if i.live}
            idle = [info for info in idle if info.session_id not in held]
        if dry_run:
            return [(info.session_id, info.checkpoints) for info in idle]
        pruned = []
        for info in idle:
            # Re-checked under the row lock: on PostgreSQL (READ COMMITTED) an agent
            # may have written since the listing, and then the session is kept.
            if not force:  # leased since the listing (PostgreSQL): kept
                try:
                    leases.check(conn, info.session_id, None, checks.now())
                except SessionLeasedError:
                    continue
            removed = repo.delete_session(conn, info.session_id, idle_before=idle_before)
            if removed is not None:
                pruned.append((info.session_id, removed))
        return pruned

    return Operation(run, write=not dry_run)


def import_checkpoints(
    session_id: Any,
    entries: Iterable[Any],
    *,
    on_entry: Any = None,
    min_last_seq: Any = 0,
    threads_ok: bool,
    fence: Any = None,
    force: bool = False,
) -> Operation[int]:
    """Import checkpoints in the seed's export form, all or nothing; how many were written.

    ``entries`` are read while the operation runs (streamed), so their errors surface
    from ``run``; ``threads_ok`` lets the inserts overlap the reading on a second thread
    (not for a connection bound to its thread, such as SQLite's ``:memory:``).
    """
    session_id = check_key(session_id, "session_id")
    if type(min_last_seq) is not int or not 0 <= min_last_seq <= MAX_IMPORT_SEQ:
        # Bounded as import seqs are: a counter at 2**63 - 1 left every later create of
        # the session failing (an untyped OverflowError on SQLite).
        raise CheckpointValueError(
            f"min_last_seq must be an int from 0 to {MAX_IMPORT_SEQ}, not {min_last_seq!r}"
        )
    if not isinstance(entries, Document):
        try:
            iter(entries)
        except TypeError:
            raise CheckpointTypeError(
                f"entries must be an iterable of dicts, not {type(entries).__name__}"
            ) from None
    if on_entry is not None and not callable(on_entry):
        raise CheckpointTypeError(f"on_entry must be callable, not {type(on_entry).__name__}")
    now = checks.now()
    # A Document's plain entries (JSON values, none NaN or infinite) need no strict
    # walk, and what its parser builds is acyclic: no garbage collection while it is
    # read (see gc_paused). Other iterables may be user generators: GC stays on.
    document = isinstance(entries, Document)

    def run(conn: Connection) -> int:
        pairs = entries.entries() if document else ((entry, False) for entry in entries)
        parsed: Iterator[ImportEntry] = (
            parse_entry(entry, index, parsed=plain) for index, (entry, plain) in enumerate(pairs)
        )
        if on_entry is not None:
            parsed = _progress(parsed, on_entry)
        with gc_paused() if document else contextlib.nullcontext():
            leases.check(conn, session_id, leases.FORCE if force else fence, now)
            # Made if missing, then locked and folded (racing deletes retried: counters).
            top, held = counters.add_and_fold(conn, session_id, now)
            writer = ImportWriter(conn, session_id, top)
            # Entries are parsed and checked here while the writer inserts the batches
            # before them on a second thread (see pipeline).
            batches = _batched(parsed, IMPORT_BATCH, IMPORT_BATCH_TEXT)
            pipelined(batches, writer.write, threaded=threads_ok)
            counter = max(writer.finish(), min_last_seq)
            if writer.written or counter != top:
                # Only a change is activity: an import of what is already there
                # leaves the session's last write where it was.
                counters.rebase(conn, session_id, counter, held + writer.written, now)
        return writer.written

    return Operation(run, write=True)


def custom(
    operation: Callable[[Connection], T],
    *,
    write: bool,
    hot: bool = False,
    attempt: Attempt | None = None,
) -> Operation[T]:
    """The extension seam's operation (``store.run(op, write=, hot=, attempt=)``).

    A ``hot`` write may run on a hot-path connection whose counter cache cannot know
    what it wrote (it may add checkpoints to a session that cache remembers), so the
    cache forgets everything after it: the next create reads the counter again.

    Raises:
        CheckpointTypeError: ``operation`` is not callable (checked here, before a
            transaction begins, rather than as a bare ``TypeError`` inside it).
        CheckpointValueError: ``attempt`` for a read.
    """
    if not callable(operation):
        raise CheckpointTypeError(
            f"operation must be a function of a Connection, not {type(operation).__name__}"
        )
    if attempt is not None and not write:
        raise CheckpointValueError("attempt= is for writes (write=True)")
    if hot and write:
        run = functools.partial(_forgetting, operation)
        return Operation(run, write=True, hot=True, attempt=attempt)
    return Operation(operation, write=bool(write), hot=bool(hot), attempt=attempt)


def _forgetting(operation: Callable[[Any], T], conn: Any) -> T:
    result = operation(conn)
    cache = getattr(conn, "counter_cache", None)
    if cache is not None:
        cache.forget()
    return result


# -- reads ------------------------------------------------------------------------------


def get(checkpoint_id: Any) -> Operation[Checkpoint | None] | None:
    """The checkpoint with this id; ``None`` (no operation needed) if the id is malformed."""
    parts = split_id(checks.checkpoint_id(checkpoint_id))
    if parts is None:
        return None
    session_id, seq = parts
    check_key(session_id, "the session part of the checkpoint id")
    return Operation(
        lambda conn: repo.fetch(conn, session_id, seq),
        write=False,
        hot=True,
        read=repo.fetch_statement(session_id, seq),
    )


def get_latest(session_id: Any, name: Any = None) -> Operation[Checkpoint | None]:
    """The session's highest-seq checkpoint (with ``name``, if given)."""
    session_id = check_key(session_id, "session_id")
    if name is not None:
        name = check_key(name, "name")
    return Operation(
        lambda conn: repo.fetch_latest(conn, session_id, name),
        write=False,
        hot=True,
        read=repo.fetch_latest_statement(session_id, name),
    )


def list_checkpoints(
    session_id: Any,
    *,
    name: Any = None,
    since: Any = None,
    start: Any = None,
    end: Any = None,
    newest_first: bool = False,
    limit: Any = None,
) -> Operation[list[Checkpoint]]:
    """A session's checkpoints in seq order (or newest first), filtered."""
    session_id = check_key(session_id, "session_id")
    if name is not None:
        name = check_key(name, "name")
    limit = checks.optional_limit(limit, "limit")
    if limit is not None and limit >= 2**63:
        limit = None  # more than any session can hold (and than SQLite's INTEGER)
    filters = bounds.time_filters(
        checks.aware(since, "since") if since is not None else None,
        checks.aware(start, "start") if start is not None else None,
        checks.aware(end, "end") if end is not None else None,
    )
    if filters is bounds.NOTHING:  # e.g. an end before year 1 in UTC
        return Operation(lambda conn: [], write=False)
    return Operation(
        lambda conn: repo.list_checkpoints(
            conn, session_id, name=name, newest_first=newest_first, limit=limit, **filters
        ),
        write=False,
    )


def count(session_id: Any) -> Operation[int]:
    """How many checkpoints the session holds (0 if unknown)."""
    session_id = check_key(session_id, "session_id")
    return Operation(lambda conn: repo.count(conn, session_id), write=False)


def summary(session_id: Any) -> Operation[dict[str, Any]]:
    """The seed's summary dict for a session, from one read transaction."""
    session_id = check_key(session_id, "session_id")

    def run(conn: Connection) -> dict[str, Any]:
        names = repo.name_counts(conn, session_id)
        first = repo.fetch_first(conn, session_id)
        last = repo.fetch_latest(conn, session_id)
        if first is None or last is None:
            return {
                "total_count": 0,
                "unique_names": 0,
                "names": {},
                "first_checkpoint": None,
                "last_checkpoint": None,
                "duration_seconds": 0,
            }
        return {
            "total_count": sum(names.values()),
            "unique_names": len(names),
            "names": names,
            "first_checkpoint": first.to_dict(),
            "last_checkpoint": last.to_dict(),
            "duration_seconds": (last.timestamp - first.timestamp).total_seconds(),
        }

    return Operation(run, write=False)


def list_sessions(prefix: Any = None, idle_for: Any = None) -> Operation[list[SessionInfo]]:
    """Every session with its counts and last activity, ordered by id."""
    prefix = bounds.check_prefix(prefix)
    idle_before = bounds.idle_cutoff(checks.now(), idle_for) if idle_for is not None else None
    if prefix is bounds.NOTHING or idle_before is bounds.NOTHING:
        # No id starts so, or no session is idle that long (the same on both backends).
        return Operation(lambda conn: [], write=False)
    return Operation(
        lambda conn: repo.list_sessions(conn, prefix=prefix, idle_before=idle_before),
        write=False,
    )


def session_info(session_id: Any) -> Operation[SessionInfo | None]:
    """One session's :class:`SessionInfo`, or ``None``."""
    session_id = check_key(session_id, "session_id")

    def run(conn: Connection) -> SessionInfo | None:
        found = repo.list_sessions(conn, session_id=session_id)
        return found[0] if found else None

    return Operation(run, write=False)


def execute_read(sql: str, params: dict[str, Any] | None = None) -> Operation[list[Any]]:
    """A read-only SQL query's rows (for the ops CLI)."""
    return Operation(lambda conn: list(conn.execute(text(sql), params or {})), write=False)


# -- helpers ----------------------------------------------------------------------------


def _progress(
    entries: Iterator[ImportEntry], on_entry: Callable[[], object]
) -> Iterator[ImportEntry]:
    """Call ``on_entry`` as each entry has been read and checked (progress)."""
    for entry in entries:
        on_entry()
        yield entry


def _batched(
    items: Iterable[ImportEntry], size: int, text_limit: int
) -> Iterator[list[ImportEntry]]:
    """Group entries into batches of ``size``, or fewer whose text reaches ``text_limit``."""
    batch: list[ImportEntry] = []
    text = 0
    for item in items:
        batch.append(item)
        text += len(item.data_text) + len(item.metadata_text)
        if len(batch) >= size or text >= text_limit:
            yield batch
            batch, text = [], 0
    if batch:
        yield batch
