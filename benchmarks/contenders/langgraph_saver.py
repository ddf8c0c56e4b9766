"""Comparator (b): LangGraph's ``SqliteSaver`` (optional ``bench`` extra).

What we hand it: our own ``sqlite3.connect(path, check_same_thread=False)`` with
``journal_mode=WAL``, ``synchronous`` = the workload's level, ``busy_timeout=30000`` and
``foreign_keys=ON`` set before the saver sees it (``SqliteSaver.from_conn_string``
would leave ``synchronous`` at SQLite's default, FULL). The saver keeps the driver's
default transaction handling (implicit deferred ``BEGIN`` before the ``INSERT``, one
``commit()`` per ``put``).

An equivalent checkpoint: the payload's top-level keys are the graph's channels
(``channel_values``), one version per channel, the id a ``uuid6`` as LangGraph makes
it, chained to the previous checkpoint as parent; our checkpoint name goes into the
metadata, which is where LangGraph keeps per-checkpoint facts. Reads are
``get_tuple`` (it also queries the pending writes, as it always does).

Databases built for the read workloads use deterministic, monotonically increasing
checkpoint ids (so ``get(id)`` can name any of them without keeping a million uuids
in memory); ``put`` is still the path that writes every row.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

from benchmarks.contenders.base import Durability, Retention
from benchmarks.payload import name_for, payload_for

try:
    from langgraph.checkpoint.base import LATEST_VERSION
    from langgraph.checkpoint.base.id import uuid6
    from langgraph.checkpoint.sqlite import SqliteSaver
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    IMPORT_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

COLD_RESTART_CODE = """\
import sqlite3, sys
from langgraph.checkpoint.sqlite import SqliteSaver
conn = sqlite3.connect(sys.argv[1], check_same_thread=False)
saver = SqliteSaver(conn)
t = saver.get_tuple({"configurable": {"thread_id": sys.argv[2], "checkpoint_ns": ""}})
conn.close()
assert t.checkpoint["channel_values"]["step"] > 0
"""


def fill_id(seq: int) -> str:
    """A deterministic uuid6-shaped id that sorts like ``seq`` (used by fills)."""
    return f"{seq:08x}-0000-6000-8000-000000000000"


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


class SaverWriter:
    """Puts checkpoints into one thread, chained parent to child."""

    def __init__(self, saver: Any, thread_id: str) -> None:
        self._saver = saver
        self._config: dict[str, Any] = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
        }
        self._step = 0

    def create(self, name: str, data: dict[str, Any]) -> str:
        """``SqliteSaver.put`` of an equivalent checkpoint."""
        self._step += 1
        checkpoint = _checkpoint(self._step, data, str(uuid6(clock_seq=self._step)))
        metadata = {"source": "loop", "step": self._step, "name": name}
        self._config = self._saver.put(self._config, checkpoint, metadata, {})
        return str(self._config["configurable"]["checkpoint_id"])


class SaverBackend:
    """A ``SqliteSaver`` over a connection we configured."""

    def __init__(self, path: str, durability: Durability) -> None:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        self._durability = durability
        self._conn = conn
        self._saver = SqliteSaver(conn)
        self._saver.setup()

    def writer(self, session_id: str, retention: Retention = "default") -> SaverWriter:
        """A writer for one thread (the saver has no retention)."""
        return SaverWriter(self._saver, session_id)

    def get_latest(self, session_id: str) -> Any:
        """``get_tuple`` without a checkpoint id: the thread's newest."""
        return self._saver.get_tuple(
            {"configurable": {"thread_id": session_id, "checkpoint_ns": ""}}
        )

    def get(self, session_id: str, seq: int) -> Any:
        """``get_tuple`` of one checkpoint id (ids as written by ``fill``)."""
        return self._saver.get_tuple(
            {
                "configurable": {
                    "thread_id": session_id,
                    "checkpoint_ns": "",
                    "checkpoint_id": fill_id(seq),
                }
            }
        )

    def export(self, session_id: str) -> str:
        """The saver has no export in the seed's format."""
        raise NotImplementedError("SqliteSaver has no export/import")

    def import_(self, session_id: str, text: str) -> int:
        """The saver has no import."""
        raise NotImplementedError("SqliteSaver has no export/import")

    def fill(self, sessions: list[tuple[int, str]], per_session: int) -> None:
        """``put`` every checkpoint (synchronous=OFF while filling; ids from fill_id)."""
        saver: Any = self._saver  # plain dicts stand in for LangGraph's TypedDicts
        self._conn.execute("PRAGMA synchronous=OFF")
        try:
            for index, thread_id in sessions:
                config: dict[str, Any] = {
                    "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
                }
                for step in range(1, per_session + 1):
                    checkpoint = _checkpoint(step, payload_for(index, step), fill_id(step))
                    metadata = {"source": "loop", "step": step, "name": name_for(index, step)}
                    config = saver.put(config, checkpoint, metadata, {})
        finally:
            level = "FULL" if self._durability == "full" else "NORMAL"
            self._conn.execute(f"PRAGMA synchronous={level}")

    def close(self) -> None:
        """Close our connection."""
        self._conn.close()


class LangGraphContender:
    """Comparator (b)."""

    key = "b"
    label = "(b) LangGraph SqliteSaver"
    durable = True

    def open(self, path: str, durability: Durability) -> SaverBackend:
        """A saver over a connection with our PRAGMAs."""
        return SaverBackend(path, durability)

    def cold_restart_code(self) -> str | None:
        """Import the saver, connect, ``get_tuple`` of the newest checkpoint."""
        return COLD_RESTART_CODE
