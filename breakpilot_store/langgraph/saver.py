"""``BreakpilotSaver``: LangGraph's checkpointer interface over a breakpilot store."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import URL

from ..aio import AsyncCheckpointStore
from ..codec import check_size
from ..errors import (
    BreakpilotStoreError,
    CheckpointTypeError,
    CheckpointValueError,
    StoreClosedError,
)
from ..store import CheckpointStore
from . import checks
from . import operations as ops
from .values import TAG, ValueCodec

#: The key of ``checkpoints.data`` that holds the parent checkpoint's id.
PARENT_KEY = ops.PARENT_KEY
#: The tag of a value written by a custom ``serde`` (its type string and bytes).
SERDE_TAG = "serde"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Stores:
    """The saver's stores: the sync one, and an async front per event loop."""

    def __init__(self, sync: CheckpointStore | None) -> None:
        self.sync = sync
        # Keyed by the loop itself, not weakly: a front whose loop was collected would
        # drop out unclosed, its writer thread running until the process ends (the
        # fronts of ended loops are closed when a new loop comes, and by close()).
        self.fronts: dict[Any, AsyncCheckpointStore] = {}
        self.lock = threading.Lock()
        self.closed = False


def _is_checkpoint(doc: Any, checkpoint_id: str) -> bool:
    """Whether a stored document is the saver's checkpoint ``checkpoint_id``.

    Its id, which the saver always writes, and the one part read item by item; nothing
    more, so that checkpoints of another LangGraph version's shape still read.
    """
    return (
        type(doc) is dict
        and doc.get("id") == checkpoint_id
        and type(doc.get("channel_values", {})) is dict
    )


class BreakpilotSaver(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer that keeps threads as readable sessions of a store.

    Every LangGraph checkpoint is one row of ``checkpoints`` (channel values as JSON
    text, see :mod:`breakpilot_store.langgraph.values`); a thread's namespace is one
    session (``thread_id``, or ``thread_id|checkpoint_ns`` for a subgraph's); pending
    writes live in ``langgraph_writes``. Sync and async methods share one database and
    one implementation (:mod:`breakpilot_store.langgraph.operations`).

    Args:
        store: A path or SQLAlchemy URL, a :class:`CheckpointStore`, an
            :class:`AsyncCheckpointStore`, or ``None`` for the default store. A store
            passed in stays open when the saver closes; one opened here is closed.
        keep_last: Keep only this many newest checkpoints per thread and namespace,
            applied in the same transaction as each ``put`` (default: keep all).
        serde: A LangGraph serializer for channel and write values instead of the
            tagged JSON (values then read as ``{"$type": "serde", ...}``).
        allowed_types: Classes (or ``"module:QualName"`` strings) beyond those of
            ``langchain_core`` and ``langgraph`` that values may hold.
        **store_options: Options of :class:`CheckpointStore` for a store opened here.

    Raises:
        CheckpointValueError: ``keep_last`` is not a positive int.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | URL | CheckpointStore | AsyncCheckpointStore | None = None,
        *,
        keep_last: int | None = None,
        serde: SerializerProtocol | None = None,
        allowed_types: Iterable[type | str] = (),
        **store_options: Any,
    ) -> None:
        super().__init__(serde=serde)
        if keep_last is not None:
            if type(keep_last) is not int:
                raise CheckpointTypeError(
                    f"keep_last must be an int, not {type(keep_last).__name__}"
                )
            if keep_last < 1:
                raise CheckpointValueError(f"keep_last must be positive, not {keep_last}")
        self.keep_last = keep_last
        self._custom_serde = serde is not None
        self._codec = ValueCodec(allowed_types)
        self._owns = not isinstance(store, (CheckpointStore, AsyncCheckpointStore))
        # The async store is bound to the event loop it starts on (its writer, and on
        # PostgreSQL its async engine), while LangGraph users call asyncio.run() more
        # than once with one saver, and sync methods in between. So the saver keeps one
        # sync store and, unless it was given an async store, one async front over it
        # per event loop (AsyncCheckpointStore.wrap: same database, same store).
        self._given_async = store if isinstance(store, AsyncCheckpointStore) else None
        self._url = None if isinstance(store, (CheckpointStore, AsyncCheckpointStore)) else store
        self._store_options = store_options
        # Shared with the clones with_allowlist makes (copy.copy keeps the reference).
        self._stores = _Stores(store if isinstance(store, CheckpointStore) else None)

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def from_conn_string(cls, conn_string: str, **options: Any) -> Iterator[BreakpilotSaver]:
        """Open a saver on a path or URL for a ``with`` block, as ``SqliteSaver``'s does."""
        saver = cls(conn_string, **options)
        try:
            yield saver
        finally:
            saver.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def afrom_conn_string(
        cls, conn_string: str, **options: Any
    ) -> AsyncIterator[BreakpilotSaver]:
        """:meth:`from_conn_string` for ``async with`` (closes with :meth:`aclose`)."""
        saver = cls(conn_string, **options)
        try:
            yield saver
        finally:
            await saver.aclose()

    @property
    def store(self) -> CheckpointStore:
        """The :class:`CheckpointStore` under this saver (opened, blocking, on first use)."""
        stores = self._stores
        if stores.closed:
            raise StoreClosedError("this BreakpilotSaver is closed")
        if self._given_async is not None:
            return self._given_async.sync_store
        with stores.lock:
            if stores.sync is None:
                stores.sync = CheckpointStore(self._url, **self._store_options)
            return stores.sync

    async def _front(self) -> AsyncCheckpointStore:
        """The async store for the running event loop."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        fronts = self._stores.fronts
        front = fronts.get(loop)
        if front is None:
            store = self._stores.sync or await asyncio.to_thread(lambda: self.store)
            front = fronts.setdefault(loop, AsyncCheckpointStore.wrap(store))
            # A script that calls asyncio.run again and again leaves a front per loop.
            await asyncio.to_thread(self._close_ended_fronts, False)
        return front

    def close(self) -> None:
        """Close the store if this saver opened it (from sync code).

        The async fronts of event loops that have ended are closed on a loop of their
        own; one of a loop still running must be closed there, with :meth:`aclose`.
        """
        if self._stores.closed:
            return
        for loop in list(self._stores.fronts):
            if loop.is_running():
                raise BreakpilotStoreError(
                    "close() called while an event loop that used this saver runs: "
                    "use await aclose() there"
                )
        self._close_ended_fronts()
        self._shut()

    async def aclose(self) -> None:
        """Close this loop's async front, and the store if this saver opened it."""
        if self._stores.closed:
            return
        front = self._stores.fronts.pop(asyncio.get_running_loop(), None)
        if front is not None:
            await front.close()  # a wrap: leaves the sync store open
        await asyncio.to_thread(self._close_ended_fronts)
        await asyncio.to_thread(self._shut)

    def _close_ended_fronts(self, every: bool = True) -> None:
        """Close the fronts left by other event loops (their writer threads stop).

        ``every``: all of them (closing the saver; any loop still running was refused
        first); else only those whose loop is closed.
        """
        fronts = self._stores.fronts
        with self._stores.lock:
            ended = [loop for loop in list(fronts) if every or loop.is_closed()]
            taken = [fronts.pop(loop) for loop in ended]
        for front in taken:
            # Its loop has ended: what the front bound to it (tasks, an async engine)
            # cannot be awaited any more, and is let go; its threads are shut here.
            with contextlib.suppress(BaseException):
                asyncio.run(front.close())

    def _shut(self) -> None:
        # A store passed in stays open, and the saver keeps working on it.
        if self._owns:
            self._stores.closed = True
            if self._stores.sync is not None:
                self._stores.sync.close()

    def __enter__(self) -> BreakpilotSaver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> BreakpilotSaver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _run(
        self,
        operation: Any,
        *,
        write: bool = False,
        hot: bool = False,
        attempt: Callable[[], Any] | None = None,
    ) -> Any:
        store = self.store
        if not write:
            return store.run(operation, hot=hot)
        if store.engine.dialect.name != "sqlite":
            # PostgreSQL: a step's put and put_writes overlap on connections of their
            # own (the put's row lock leaves the writes' foreign-key check alone).
            tried = None if attempt is None else attempt()
            return store.run(operation, write=True, hot=hot, attempt=tried)
        # LangGraph's sync loop sends a step's put and put_writes from its pool threads
        # (six, taking turns), often at once. serial: they queue on the store's lock
        # rather than sleep in SQLite's busy handler (1, 2, 5, 10... ms: ~1.9x
        # SqliteSaver's time per step); they share one connection, whose page cache a
        # write on another connection would have emptied (each write on its own
        # thread's connection read its pages again); and those that queue share the
        # next commit (benchmarks/OPTIMISATIONS.md, LangGraph round 3).
        return store.run(operation, write=True, hot=hot, serial=True)

    async def _arun(self, operation: Any, *, write: bool = False, hot: bool = False) -> Any:
        # No lock here: the async store has one writer (SQLite's writer thread, the
        # PostgreSQL writer), so a step's put and put_writes queue there, and may share
        # one commit (group commit).
        return await (await self._front()).run(operation, write=write, hot=hot)

    # -- values ------------------------------------------------------------------------

    def _value_json(self, value: Any) -> Any:
        if self._custom_serde:
            kind, blob = self.serde.dumps_typed(value)
            return {TAG: SERDE_TAG, "format": kind, "b64": base64.b64encode(blob).decode()}
        return self._codec.to_json(value)

    def _value(self, stored: Any) -> Any:
        if self._custom_serde and type(stored) is dict and stored.get(TAG) == SERDE_TAG:
            return self.serde.loads_typed((stored["format"], base64.b64decode(stored["b64"])))
        return self._codec.from_json(stored)

    def _encode_checkpoint(self, checkpoint: Checkpoint, parent_id: str | None) -> str:
        rest = {key: item for key, item in checkpoint.items() if key != "channel_values"}
        doc = self._codec.to_json(rest)
        doc["channel_values"] = {
            key: self._value_json(item)
            for key, item in checkpoint.get("channel_values", {}).items()
        }
        doc[PARENT_KEY] = parent_id
        with checks.encodable("the checkpoint"):
            return orjson.dumps(doc).decode()

    def _tuple(self, thread_id: str, ns: str, row: ops.Row, writes: ops.Writes) -> CheckpointTuple:
        session_id, seq, checkpoint_id, data, metadata = row
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CheckpointValueError(
                f"checkpoint {session_id}:{seq} of LangGraph thread {thread_id!r} does not "
                f"hold JSON (was it edited by hand?): {exc}"
            ) from exc
        if not _is_checkpoint(doc, checkpoint_id):
            # A row of this thread's session that the saver did not write: a manager's
            # create, or an edit by hand. LangGraph would fail on it with a KeyError.
            raise CheckpointValueError(
                f"checkpoint {session_id}:{seq} of LangGraph thread {thread_id!r} is not a "
                "LangGraph checkpoint (written into the thread's session by a "
                "CheckpointManager, or by hand?)"
            )
        values = doc.pop("channel_values", {})
        parent_id = doc.pop(PARENT_KEY, None)
        checkpoint = self._codec.from_json(doc)
        checkpoint["channel_values"] = {key: self._value(item) for key, item in values.items()}
        base = {"thread_id": thread_id, "checkpoint_ns": ns}
        return CheckpointTuple(
            config={"configurable": {**base, "checkpoint_id": checkpoint_id}},
            checkpoint=checkpoint,
            metadata=self._codec.loads(metadata),
            parent_config=(
                {"configurable": {**base, "checkpoint_id": parent_id}} if parent_id else None
            ),
            pending_writes=[
                (task_id, channel, self._value(orjson.loads(value)))
                for task_id, channel, value in writes
            ],
        )

    # -- operations, built once for both fronts ----------------------------------------

    @staticmethod
    def _where(config: RunnableConfig) -> ops.Target:
        configurable = checks.configurable(config)
        if "thread_id" not in configurable:
            raise CheckpointValueError("config['configurable'] has no 'thread_id'")
        return ops.target(configurable["thread_id"], configurable.get("checkpoint_ns", ""))

    def _get_op(self, config: RunnableConfig) -> tuple[ops.Target, Any]:
        where = self._where(config)
        checkpoint_id = checks.config_id(get_checkpoint_id(config), "checkpoint_id")
        return where, functools.partial(ops.get_tuple, where=where, checkpoint_id=checkpoint_id)

    def _list_op(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Any:
        configurable = checks.configurable(config)
        thread_id = configurable.get("thread_id")
        ns = configurable.get("checkpoint_ns")
        checkpoint_id = checks.config_id(configurable.get("checkpoint_id"), "checkpoint_id")
        before_id = checks.optional_id(
            get_checkpoint_id(before) if before else None, "before's checkpoint_id"
        )
        if before:
            checks.configurable(before, "before")
        limit = checks.limit(limit)
        keep = None
        if filter is not None and not isinstance(filter, dict):
            raise CheckpointTypeError(f"filter must be a dict, not {type(filter).__name__}")
        if filter:
            wanted = dict(filter)

            def keep(metadata: str) -> bool:
                # A key the metadata lacks matches None, as in InMemorySaver and SqliteSaver.
                found = self._codec.loads(metadata)
                return isinstance(found, dict) and all(
                    found.get(key) == value for key, value in wanted.items()
                )

        return functools.partial(
            ops.list_checkpoints,
            thread_id=None if thread_id is None else str(thread_id),
            checkpoint_ns=ns,
            checkpoint_id=checkpoint_id,
            before=before_id,
            limit=limit,
            keep=keep,
        )

    def _put_op(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[Any, RunnableConfig]:
        where = self._where(config)
        checkpoint_id = checks.checkpoint(checkpoint)
        parent_id = config["configurable"].get("checkpoint_id")
        data = self._encode_checkpoint(checkpoint, parent_id)
        with checks.encodable("the metadata"):
            meta = self._codec.dumps(get_serializable_checkpoint_metadata(config, metadata))
        check_size(data, "the checkpoint with its metadata", meta)
        op = functools.partial(
            ops.put,
            where=where,
            checkpoint_id=checkpoint_id,
            data=data,
            metadata=meta,
            now=_now(),
            keep_last=self.keep_last,
        )
        saved: RunnableConfig = {
            "configurable": {
                "thread_id": where.thread_id,
                "checkpoint_ns": where.checkpoint_ns,
                "checkpoint_id": checkpoint_id,
            }
        }
        return op, saved

    def _put_writes_op(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Any:
        where = self._where(config)
        checkpoint_id = config["configurable"].get("checkpoint_id")
        checks.optional_id(task_id, "task_id")
        checks.optional_id(task_path, "task_path") if task_path else None
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise CheckpointValueError(
                "put_writes needs the checkpoint's config: config['configurable'] has no "
                "'checkpoint_id'"
            )
        checks.optional_id(checkpoint_id, "checkpoint_id")
        with checks.encodable("a pending write"):
            rows = [
                (
                    task_id,
                    WRITES_IDX_MAP.get(checks.optional_id(channel, "channel"), idx),
                    channel,
                    check_size(orjson.dumps(self._value_json(value)), "a pending write").decode(),
                    task_path,
                )
                for idx, (channel, value) in enumerate(writes)
            ]
        return functools.partial(
            ops.put_writes, where=where, checkpoint_id=checkpoint_id, rows=rows, now=_now()
        )

    def _prune_op(self, thread_ids: Sequence[str], strategy: str) -> Any:
        if strategy not in ("keep_latest", "delete"):
            raise CheckpointValueError(
                f"unknown prune strategy {strategy!r} (use 'keep_latest' or 'delete')"
            )
        threads = [ops.target(t).thread_id for t in checks.id_list(thread_ids, "thread_ids")]
        return functools.partial(ops.prune, thread_ids=threads, strategy=strategy, now=_now())

    # -- sync --------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint ``config`` names (the newest without an id), or ``None``."""
        where, op = self._get_op(config)
        found = self._run(op, hot=True)
        return None if found is None else self._tuple(where.thread_id, where.checkpoint_ns, *found)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints newest first (``config=None``: every thread), in one read."""
        for tid, ns, row, writes in self._run(self._list_op(config, filter, before, limit)):
            yield self._tuple(tid, ns, row, writes)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (one row; retention in the same transaction)."""
        op, saved = self._put_op(config, checkpoint, metadata)
        # On PostgreSQL, one round trip in the common case (operations.put_attempt).
        self._run(op, write=True, hot=True, attempt=lambda: ops.put_attempt(**op.keywords))
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint ``config`` names."""
        op = self._put_writes_op(config, writes, task_id, task_path)
        args = op.keywords
        self._run(
            op,
            write=True,
            hot=True,
            attempt=lambda: ops.put_writes_attempt(
                args["where"], args["checkpoint_id"], args["rows"]
            ),
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every namespace of a thread: checkpoints, writes and sessions."""
        self._run(
            functools.partial(ops.delete_thread, thread_id=ops.target(thread_id).thread_id),
            write=True,
        )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) made by these runs."""
        self._run(
            functools.partial(
                ops.delete_for_runs, run_ids=checks.id_list(run_ids, "run_ids"), now=_now()
            ),
            write=True,
        )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every namespace of a thread, with its writes, to a new thread (ids kept)."""
        self._run(self._copy_op(source_thread_id, target_thread_id), write=True)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint; ``delete``: all go."""
        self._run(self._prune_op(thread_ids, strategy), write=True)

    def _copy_op(self, source: str, dest: str) -> Any:
        return functools.partial(
            ops.copy_thread,
            source=ops.target(source).thread_id,
            dest=ops.target(dest).thread_id,
            now=_now(),
        )

    # -- async (the same operations) ---------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        where, op = self._get_op(config)
        found = await self._arun(op, hot=True)
        return None if found is None else self._tuple(where.thread_id, where.checkpoint_ns, *found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        for tid, ns, row, writes in await self._arun(self._list_op(config, filter, before, limit)):
            yield self._tuple(tid, ns, row, writes)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        op, saved = self._put_op(config, checkpoint, metadata)
        await self._arun(op, write=True, hot=True)
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await self._arun(
            self._put_writes_op(config, writes, task_id, task_path), write=True, hot=True
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        await self._arun(
            functools.partial(ops.delete_thread, thread_id=ops.target(thread_id).thread_id),
            write=True,
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        await self._arun(
            functools.partial(
                ops.delete_for_runs, run_ids=checks.id_list(run_ids, "run_ids"), now=_now()
            ),
            write=True,
        )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        await self._arun(self._copy_op(source_thread_id, target_thread_id), write=True)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        await self._arun(self._prune_op(thread_ids, strategy), write=True)

    def with_allowlist(self, extra_allowlist: Iterable[tuple[str, ...]]) -> BreakpilotSaver:
        """A saver on the same store that also allows these ``(module, name)`` classes.

        LangGraph calls this when it compiles a graph, with the classes its state schema
        names, so a state's own pydantic models, dataclasses and enums load back without
        ``allowed_types``, as they do with LangGraph's default serializer.
        """
        keys = [f"{entry[0]}:{entry[1]}" for entry in extra_allowlist if len(entry) >= 2]
        new = [key for key in keys if not self._codec.allows(key)]
        clone = super().with_allowlist(extra_allowlist) if self._custom_serde else self
        if not new:
            return clone
        if clone is self:
            clone = copy.copy(self)
        clone._codec = self._codec.extended(new)
        return clone

    # -- versions ----------------------------------------------------------------------

    def get_next_version(self, current: int | str | None, channel: None = None) -> int:
        """Channel versions are integers 1, 2, 3... (readable in ``channel_versions``).

        A version left by a saver that writes ``"<int>.<random>"`` strings continues
        from its integer part.
        """
        if current is None:
            return 1
        if isinstance(current, str):
            return int(current.split(".")[0]) + 1
        return int(current) + 1
