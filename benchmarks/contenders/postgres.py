"""The PostgreSQL lanes: the store, (a) raw psycopg by hand, (b) LangGraph's PostgresSaver.

Each lane works in a schema of its own on the same server (the URL comes from
``BREAKPILOT_BENCH_POSTGRES_URL``, else ``BREAKPILOT_TEST_POSTGRES_URL``), all at the
server's defaults (``synchronous_commit=on``: every commit waits for the WAL's fsync).

* ``store``: ``CheckpointStore(url, schema=...)`` and a ``CheckpointManager`` per
  session, through the public API only.
* ``a``: psycopg 3 by hand on the store's schema: one autocommit connection, the
  store's create as the one statement it is (allocate the seq, rebase the session's
  row, insert the checkpoint), orjson for the JSON; reads are one ``SELECT`` and an
  ``orjson.loads``. No validation, no retention: the floor for this transaction.
* ``b``: ``PostgresSaver`` as ``from_conn_string`` makes it (autocommit, pipeline per
  ``put``, ``prepare_threshold=0``); checkpoints as for SqliteSaver (channels = the
  payload's keys, one version each, chained parent to child).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import psycopg

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.core.repository import PG_CREATE
from breakpilot_store.postgres.fastpath import compiled

try:
    from langgraph.checkpoint.base import LATEST_VERSION
    from langgraph.checkpoint.base.id import uuid6
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    SAVER_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    SAVER_ERROR = None

NO_RETENTION = {"compress_after": 10**9, "max_checkpoints": 10**9}


def server_url() -> str | None:
    """The SQLAlchemy URL of the server to benchmark on, or None."""
    return os.environ.get("BREAKPILOT_BENCH_POSTGRES_URL") or os.environ.get(
        "BREAKPILOT_TEST_POSTGRES_URL"
    )


def libpq(url: str) -> str:
    """``postgresql+psycopg://...`` as libpq takes it."""
    return "postgresql://" + url.split("://", 1)[1]


def new_schema(url: str, tag: str) -> str:
    """Create a fresh schema for one lane and return its name."""
    name = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return name


def drop_schema(url: str, name: str) -> None:
    """Drop a lane's schema and everything in it."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


class StoreLane:
    """The store: one ``CheckpointStore``, a manager per session."""

    key = "store"

    def __init__(self, url: str, schema: str, retention: bool = True) -> None:
        self.store = CheckpointStore(url, schema=schema)
        self._kwargs: dict[str, Any] = {} if retention else NO_RETENTION
        self._managers: dict[str, CheckpointManager] = {}

    def _manager(self, session: str) -> CheckpointManager:
        manager = self._managers.get(session)
        if manager is None:
            manager = self._managers[session] = CheckpointManager(
                session, store=self.store, **self._kwargs
            )
        return manager

    def create(self, session: str, name: str, data: dict[str, Any]) -> str:
        return self._manager(session).create(name, data).id

    def get_latest(self, session: str) -> Any:
        found = self._manager(session).get_latest()
        if found is not None:
            found.data  # noqa: B018 - decoded, as the others are
        return found

    def get(self, session: str, seq: int) -> Any:
        found = self._manager(session).get(f"{session}:{seq}")
        if found is not None:
            found.data  # noqa: B018
        return found

    def import_(self, session: str, document: str) -> int:
        return self._manager(session).import_checkpoints(document)

    def close(self) -> None:
        self.store.close()


_CREATE_SQL = compiled(PG_CREATE)[0]
_LATEST_SQL = (
    "SELECT session_id, seq, name, created_at, data::text, metadata::text FROM checkpoints "
    "WHERE session_id = %s ORDER BY seq DESC LIMIT 1"
)
_GET_SQL = (
    "SELECT session_id, seq, name, created_at, data::text, metadata::text FROM checkpoints "
    "WHERE session_id = %s AND seq = %s"
)


class RawLane:
    """(a): psycopg by hand on the store's schema (made by a store opened once)."""

    key = "a"

    def __init__(self, url: str, schema: str) -> None:
        CheckpointStore(url, schema=schema).close()  # the store's own tables
        self.conn = psycopg.connect(
            libpq(url), autocommit=True, prepare_threshold=None, options=f"-csearch_path={schema}"
        )

    def create(self, session: str, name: str, data: dict[str, Any]) -> str:
        params = {
            "sid": session,
            "name": name,
            "now": datetime.now(timezone.utc),
            "data": orjson.dumps(data).decode(),
            "metadata": "{}",
            "max_held": 2**62,
        }
        seq = self.conn.execute(_CREATE_SQL, params).fetchone()[0]
        return f"{session}:{seq}"

    def _read(self, row: Any) -> Any:
        if row is None:
            return None
        return (f"{row[0]}:{row[1]}", row[2], row[3], orjson.loads(row[4]), orjson.loads(row[5]))

    def get_latest(self, session: str) -> Any:
        return self._read(self.conn.execute(_LATEST_SQL, (session,)).fetchone())

    def get(self, session: str, seq: int) -> Any:
        return self._read(self.conn.execute(_GET_SQL, (session, seq)).fetchone())

    def close(self) -> None:
        self.conn.close()


def _checkpoint(step: int, data: dict[str, Any], checkpoint_id: str) -> dict[str, Any]:
    return {
        "v": LATEST_VERSION,
        "id": checkpoint_id,
        "ts": datetime.now(timezone.utc).isoformat(),
        "channel_values": data,
        "channel_versions": dict.fromkeys(data, step),
        "versions_seen": {},
        "updated_channels": None,
    }


class SaverLane:
    """(b): ``PostgresSaver`` on a connection made as ``from_conn_string`` makes it."""

    key = "b"

    def __init__(self, url: str, schema: str) -> None:
        self.conn = psycopg.connect(
            libpq(url),
            autocommit=True,
            prepare_threshold=0,
            row_factory=dict_row,
            options=f"-csearch_path={schema}",
        )
        self.saver = PostgresSaver(self.conn)
        self.saver.setup()
        self._threads: dict[str, tuple[dict[str, Any], int, list[str]]] = {}

    def create(self, session: str, name: str, data: dict[str, Any]) -> str:
        config, step, ids = self._threads.get(
            session, ({"configurable": {"thread_id": session, "checkpoint_ns": ""}}, 0, [])
        )
        step += 1
        checkpoint: Any = _checkpoint(step, data, str(uuid6(clock_seq=step)))
        metadata: Any = {"source": "loop", "step": step, "name": name}
        config = self.saver.put(config, checkpoint, metadata, dict.fromkeys(data, step))
        ids.append(config["configurable"]["checkpoint_id"])
        self._threads[session] = (config, step, ids)
        return str(config["configurable"]["checkpoint_id"])

    def get_latest(self, session: str) -> Any:
        return self.saver.get_tuple({"configurable": {"thread_id": session, "checkpoint_ns": ""}})

    def get(self, session: str, seq: int) -> Any:
        checkpoint_id = self._threads[session][2][seq - 1]
        config = {
            "configurable": {
                "thread_id": session,
                "checkpoint_ns": "",
                "checkpoint_id": checkpoint_id,
            }
        }
        return self.saver.get_tuple(config)  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()
