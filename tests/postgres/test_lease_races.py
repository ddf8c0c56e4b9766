"""A one-statement create racing a lease change that commits while it waits (PostgreSQL).

PostgreSQL's plain create is one statement (``repository.PG_CREATE``): its lease check
reads the statement's snapshot, taken before it waits for the session's row. An
acquisition (a first one inserts the lease row, which no read of that snapshot can
see), a takeover or a release that commits during the wait must still decide the
create. Each test holds such a lease change open in a transaction of another store,
starts the create on a thread, waits until the server shows the create blocked by that
transaction, commits it, and checks the create's outcome and, through a raw
connection, what was stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import text

from breakpilot_store import (
    CheckpointManager,
    CheckpointStore,
    LeaseLostError,
    SessionLeasedError,
)
from breakpilot_store.core import leases

S = "agent-7"


class HeldOpen:
    """Runs ``change(conn)`` in a write transaction of ``store`` and keeps it open.

    The transaction commits when :meth:`commit` is called; ``pid`` is its backend.
    """

    def __init__(self, store: CheckpointStore, change: Callable[[Any], Any]) -> None:
        self.pid: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._go = threading.Event()

        def op(conn: Any) -> Any:
            self.pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            result = change(conn)
            self._ready.set()
            if not self._go.wait(30):
                raise TimeoutError("the test never let the lease change commit")
            return result

        def main() -> None:
            try:
                self.result = store.run(op, write=True)
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"the lease change did not start: {self.error!r}")

    def commit(self) -> Any:
        self._go.set()
        self._thread.join(30)
        if self.error is not None:
            raise self.error
        return self.result


class OnThread:
    """Runs ``call()`` on a thread; :meth:`outcome` is its result or exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._box: list[Any] = []

        def main() -> None:
            try:
                self._box.append(("ok", call()))
            except BaseException as exc:  # noqa: BLE001 - returned by outcome()
                self._box.append(("error", exc))

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()

    def outcome(self) -> tuple[str, Any]:
        self._thread.join(30)
        if not self._box:
            raise TimeoutError("the create never returned")
        return self._box[0]


def wait_blocked_by(pg_raw: Callable[..., list[tuple[Any, ...]]], pid: int | None) -> None:
    """Wait until some backend waits for a lock that backend ``pid`` holds."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = pg_raw(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (pid,),
        )
        if rows[0][0]:
            return
        time.sleep(0.01)
    raise AssertionError("the create never waited for the lease change's lock")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def acquire(owner: str, *, takeover: bool = False) -> Callable[[Any], Any]:
    return lambda conn: leases.acquire(conn, S, owner, 30.0, _now(), takeover=takeover)


def stored(pg_raw: Callable[..., list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    return pg_raw("SELECT seq, name FROM checkpoints WHERE session_id = %s ORDER BY seq", (S,))


@pytest.mark.parametrize("history", [0, 3], ids=["new-session", "existing-session"])
def test_an_unleased_create_loses_to_a_first_acquisition_that_commits_while_it_waits(
    pg_url: str, pg_raw, history: int
) -> None:
    with CheckpointStore(pg_url) as writer, CheckpointStore(pg_url) as other:
        for i in range(history):
            writer.create(S, "before", {"i": i})
        change = HeldOpen(other, acquire("holder"))
        create = OnThread(lambda: writer.create(S, "raced", {"x": 1}))
        wait_blocked_by(pg_raw, change.pid)
        token, _ = change.commit()
        kind, value = create.outcome()
        assert kind == "error" and isinstance(value, SessionLeasedError), (kind, value)
        assert "'holder'" in str(value)
        assert token == 1
        assert stored(pg_raw) == [(i + 1, "before") for i in range(history)]
        # The session's row names the held token (what the next create compares).
        assert pg_raw("SELECT lease_token FROM sessions WHERE session_id = %s", (S,)) == [(1,)]


def test_an_unleased_create_loses_to_a_reacquisition_after_a_release(pg_url: str, pg_raw) -> None:
    with CheckpointStore(pg_url) as writer, CheckpointStore(pg_url) as other:
        CheckpointManager(S, store=other, lease=30.0, owner="first").close()
        writer.create(S, "free", {})  # released: anyone may write
        change = HeldOpen(other, acquire("second"))
        create = OnThread(lambda: writer.create(S, "raced", {}))
        wait_blocked_by(pg_raw, change.pid)
        assert change.commit()[0] == 2
        kind, value = create.outcome()
        assert kind == "error" and isinstance(value, SessionLeasedError), (kind, value)
        assert stored(pg_raw) == [(1, "free")]


def test_an_unleased_create_that_waited_for_a_release_writes(pg_url: str, pg_raw) -> None:
    with CheckpointStore(pg_url) as writer, CheckpointStore(pg_url) as other:
        holder = CheckpointManager(S, store=other, lease=30.0, owner="holder")
        holder.create("held", {})
        # The create's snapshot sees the live lease: its one statement writes nothing;
        # the full create then waits for the session's row and reads the lease after
        # the release committed, and writes.
        change = HeldOpen(other, lambda conn: leases.release(conn, S))
        create = OnThread(lambda: writer.create(S, "raced", {}))
        wait_blocked_by(pg_raw, change.pid)
        assert change.commit() is True
        kind, value = create.outcome()
        assert kind == "ok" and value.id == f"{S}:2", (kind, value)
        assert [name for _, name in stored(pg_raw)] == ["held", "raced"]
        assert pg_raw("SELECT lease_token FROM sessions WHERE session_id = %s", (S,)) == [(None,)]
        with pytest.raises(LeaseLostError):
            holder.create("zombie", {})
        holder.close()


@pytest.mark.parametrize("how", ["takeover", "release"])
def test_a_holders_create_loses_to_a_takeover_or_release_that_commits_while_it_waits(
    pg_url: str, pg_raw, how: str
) -> None:
    with CheckpointStore(pg_url) as mine, CheckpointStore(pg_url) as other:
        holder = CheckpointManager(S, store=mine, lease=30.0, owner="holder")
        holder.create("held", {})
        if how == "takeover":
            change = HeldOpen(other, acquire("supervisor", takeover=True))
        else:  # an operator's `lease release` (any token)
            change = HeldOpen(other, lambda conn: leases.release(conn, S))
        create = OnThread(lambda: holder.create("raced", {}))
        wait_blocked_by(pg_raw, change.pid)
        change.commit()
        kind, value = create.outcome()
        assert kind == "error" and isinstance(value, LeaseLostError), (kind, value)
        assert stored(pg_raw) == [(1, "held")]
        expected = 2 if how == "takeover" else None
        assert pg_raw("SELECT lease_token FROM sessions WHERE session_id = %s", (S,)) == [
            (expected,)
        ]
        holder.close()


def test_a_session_made_again_while_leased_keeps_its_token_on_its_row(pg_url: str, pg_raw) -> None:
    """A leased session deleted by an operator (``--force``) and written again."""
    with CheckpointStore(pg_url) as store:
        holder = CheckpointManager(S, store=store, lease=30.0, owner="holder")
        holder.create("one", {})
        store.delete_session(S, force=True)
        assert pg_raw("SELECT count(*) FROM sessions WHERE session_id = %s", (S,)) == [(0,)]
        holder.create("two", {})  # the one-statement create makes the row again
        assert pg_raw("SELECT lease_token FROM sessions WHERE session_id = %s", (S,)) == [(1,)]
        with pytest.raises(SessionLeasedError):
            store.create(S, "intruder", {})
        assert [name for _, name in stored(pg_raw)] == ["two"]
        holder.close()
