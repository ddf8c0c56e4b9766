"""Thread ids holding ``|`` or ``%`` (revision 0008).

Found by reading the mapping: thread ``a|b`` and thread ``a`` namespace ``b`` named one
session, ``a|b``, so the second to write got ``ThreadConflictError``, and thread
``a|b`` namespace ``c`` met thread ``a`` namespace ``b|c``. The thread id part of a
session id is now escaped (``%`` as ``%25``, ``|`` as ``%7C``); the migration renames
the sessions of such threads already stored, and the downgrade renames them back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from breakpilot_store import CheckpointStore
from breakpilot_store.langgraph import BreakpilotSaver
from breakpilot_store.migrate import HEAD, downgrade
from tests.migration_support import at_revision

#: (thread_id, checkpoint_ns) pairs whose old session ids collided two by two.
COLLIDING = [("a|b", ""), ("a", "b"), ("a|b", "c"), ("a", "b|c"), ("p%7Cq", ""), ("p|q", "")]
T0 = "2026-01-01T00:00:00.000000+00:00"


def _cfg(thread: str, ns: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, **extra}}


def _put(saver: BreakpilotSaver, thread: str, ns: str, step: int) -> dict[str, Any]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"who": f"{thread}/{ns}", "step": step}
    saved = saver.put(_cfg(thread, ns), checkpoint, {"source": "loop", "step": step}, {})
    saver.put_writes(saved, [("who", f"{thread}/{ns}")], f"task-{step}")
    return saved


def test_threads_that_collided_are_kept_apart(backend_url: str, raw: Any) -> None:
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        for step, (thread, ns) in enumerate(COLLIDING):
            _put(saver, thread, ns, step)
        for step, (thread, ns) in enumerate(COLLIDING):
            found = saver.get_tuple(_cfg(thread, ns))
            assert found is not None
            assert found.checkpoint["channel_values"] == {"who": f"{thread}/{ns}", "step": step}
            assert [w[1:] for w in found.pending_writes] == [("who", f"{thread}/{ns}")]
            listed = list(saver.list(_cfg(thread, ns)))
            assert [t.checkpoint["channel_values"]["step"] for t in listed] == [step]
        # A thread's deletion takes its own namespaces and nothing of the other thread.
        saver.delete_thread("a|b")
        assert saver.get_tuple(_cfg("a|b", "")) is None
        assert saver.get_tuple(_cfg("a|b", "c")) is None
        assert saver.get_tuple(_cfg("a", "b")) is not None
        assert saver.get_tuple(_cfg("a", "b|c")) is not None
    db = raw()
    assert sorted(
        db.query("SELECT session_id, thread_id, checkpoint_ns FROM langgraph_threads")
    ) == [
        ("a|b", "a", "b"),
        ("a|b|c", "a", "b|c"),
        ("p%257Cq", "p%7Cq", ""),
        ("p%7Cq", "p|q", ""),
    ]


#: (session, thread, namespace) as 0007's saver stored them.
AT_0007 = [("x|y", "x|y", ""), ("x|y|sub:1", "x|y", "sub:1"), ("50%", "50%", ""), ("t", "t", "")]


def _stored_at_0007(url: str, raw: Any, sessions: list[tuple[str, str, str]] = AT_0007) -> None:
    """Threads as revision 0007's saver stored them: the thread id unescaped."""
    at_revision(url, "0007")
    db = raw()
    stamp = T0 if db.kind == "sqlite" else datetime.fromisoformat(T0)
    for session, thread, ns in sessions:
        db.execute(
            "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at)"
            " VALUES (?, 0, 0, ?, ?)",
            (session, stamp, stamp),
        )
        db.execute(
            "INSERT INTO langgraph_threads (session_id, thread_id, checkpoint_ns) VALUES (?, ?, ?)",
            (session, thread, ns),
        )
        data = json.dumps(
            {
                "v": 4,
                "id": "1ef0",
                "ts": T0,
                "channel_values": {"who": session},
                "channel_versions": {},
                "versions_seen": {},
                "parent_checkpoint_id": None,
            }
        )
        db.execute(
            "INSERT INTO checkpoints (session_id, seq, name, created_at, data, metadata)"
            " VALUES (?, 1, '1ef0', ?, ?, '{}')",
            (session, stamp, data),
        )
        db.execute(
            "INSERT INTO langgraph_writes (session_id, checkpoint_id, task_id, idx, channel, value)"
            " VALUES (?, '1ef0', 'task', 0, 'who', ?)",
            (session, f'"{session}"'),
        )
    if any(session == "x|y" for session, _, _ in sessions):
        db.execute(
            "INSERT INTO leases (session_id, owner, token, acquired_at, renewed_at, expires_at,"
            " duration) VALUES ('x|y', NULL, 3, ?, ?, NULL, 10)",
            (stamp, stamp),
        )


def _everything(db: Any) -> list[list[tuple[Any, ...]]]:
    return [
        sorted(db.query("SELECT session_id, base_seq FROM sessions")),
        sorted(db.query("SELECT session_id, seq, name, data FROM checkpoints")),
        sorted(db.query("SELECT session_id, task_id, value FROM langgraph_writes")),
        sorted(db.query("SELECT session_id, thread_id, checkpoint_ns FROM langgraph_threads")),
        sorted(db.query("SELECT session_id, token FROM leases")),
    ]


def test_the_migration_renames_stored_threads_and_back(backend_url: str, raw: Any) -> None:
    _stored_at_0007(backend_url, raw)
    before = _everything(raw())
    with CheckpointStore(backend_url) as store:  # upgrades to head
        db = raw()
        assert db.query("SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert sorted(db.query("SELECT session_id, thread_id FROM langgraph_threads")) == [
            ("50%25", "50%"),
            ("t", "t"),
            ("x%7Cy", "x|y"),
            ("x%7Cy|sub:1", "x|y"),
        ]
        assert db.query("SELECT session_id, token FROM leases") == [("x%7Cy", 3)]
        assert db.query("SELECT count(*) FROM sessions") == [(4,)]
        if db.kind == "sqlite":
            assert db.query("PRAGMA foreign_key_check") == []
        with BreakpilotSaver(store) as saver:
            for thread, ns, session in [
                ("x|y", "", "x|y"),
                ("x|y", "sub:1", "x|y|sub:1"),
                ("50%", "", "50%"),
            ]:
                found = saver.get_tuple(_cfg(thread, ns))
                assert found is not None and found.checkpoint["channel_values"] == {"who": session}
                assert found.pending_writes == [("task", "who", session)]
            # The colliding thread can now be written beside the renamed one.
            _put(saver, "x", "y", 1)
            assert saver.get_tuple(_cfg("x", "y")).checkpoint["channel_values"]["step"] == 1
            saver.delete_thread("x")
        downgrade(store.engine, "0007")
    assert _everything(raw()) == before


# -- sessions shared with the other integrations and with managers ----------------------


def test_a_thread_never_starts_an_integrations_session(backend_url: str, raw: Any) -> None:
    """Found by hand: thread ``oai:u1`` took the session of the OpenAI session ``u1``,
    whose ``get_items`` then returned the thread's checkpoint as an item, and whose
    items the saver then returned as the thread's newest "checkpoint"."""
    import asyncio

    import pytest

    from breakpilot_store.langgraph import ThreadConflictError
    from breakpilot_store.openai_agents import BreakpilotSession

    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        for thread, ns in [("oai:u1", ""), ("adk:app:user:s1", ""), ("oai:u1", "sub:1")]:
            with pytest.raises(ThreadConflictError, match=r"sessions beginning '(oai|adk):'"):
                _put(saver, thread, ns, 0)
        _put(saver, "ok", "", 0)
        with pytest.raises(ThreadConflictError, match=r"sessions beginning 'oai:'"):
            saver.copy_thread("ok", "oai:u2")
        # Not at the start: an ordinary thread.
        _put(saver, "x-oai:u1", "oai:ns", 1)
        assert saver.get_tuple(_cfg("x-oai:u1", "oai:ns")) is not None

        async def conversation() -> list[Any]:
            async with BreakpilotSession("u1", store=store) as session:
                await session.add_items([{"role": "user", "content": "hi"}])
                return await session.get_items()

        assert asyncio.run(conversation()) == [{"role": "user", "content": "hi"}]
    db = raw()
    assert sorted(db.query("SELECT session_id FROM sessions")) == [
        ("oai:u1",),
        ("ok",),
        ("x-oai:u1|oai:ns",),
    ]
    assert sorted(db.query("SELECT session_id FROM langgraph_threads")) == [
        ("ok",),
        ("x-oai:u1|oai:ns",),
    ]


def test_a_row_the_saver_did_not_write_is_a_typed_error(backend_url: str) -> None:
    """A manager's create in a thread's session (or a row edited by hand) is not read
    as a LangGraph checkpoint: the saver returned it as one, with no ``id``."""
    import pytest

    from breakpilot_store import CheckpointManager, CheckpointValueError

    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        _put(saver, "t", "", 0)
        # Named above any uuid: the thread's newest by LangGraph's order.
        CheckpointManager("t", store=store).create("zzz", {"role": "user"})
        with pytest.raises(CheckpointValueError, match=r"^checkpoint t:2 .* is not a LangGraph"):
            saver.get_tuple(_cfg("t", ""))
        with pytest.raises(CheckpointValueError, match=r"is not a LangGraph checkpoint"):
            list(saver.list(_cfg("t", "")))


@pytest.mark.parametrize("order", [1, -1])
def test_the_migration_moves_chains_whatever_the_row_order(
    backend_url: str, raw: Any, order: int
) -> None:
    """Found by our review of this change: thread ``a|b`` goes to ``a%7Cb``, held by
    thread ``a%7Cb`` until that one goes to ``a%257Cb``. Taken one row at a time in the
    order the database gave them, ``a|b`` was skipped for good, and read as empty."""
    chain = [("a|b", "a|b", ""), ("a%7Cb", "a%7Cb", ""), ("a%257Cb", "a%257Cb", "")][::order]
    _stored_at_0007(backend_url, raw, chain)
    before = _everything(raw())
    with CheckpointStore(backend_url) as store:
        assert sorted(raw().query("SELECT session_id, thread_id FROM langgraph_threads")) == [
            ("a%25257Cb", "a%257Cb"),
            ("a%257Cb", "a%7Cb"),
            ("a%7Cb", "a|b"),
        ]
        with BreakpilotSaver(store) as saver:
            for _, thread, _ in chain:
                found = saver.get_tuple(_cfg(thread, ""))
                assert found is not None and found.checkpoint["channel_values"] == {"who": thread}
        downgrade(store.engine, "0007")
    assert _everything(raw()) == before
