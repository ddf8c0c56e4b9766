"""BreakpilotSessionService behaves as ADK's own session services.

Every scenario runs against ours and against the references it names (ADK's
``DatabaseSessionService`` on a SQLite file through aiosqlite, and its
``InMemorySessionService``), each fresh; every answer (sessions, events, states, errors)
must be identical once normalised (creation times are the clock's, so they are compared
as "before the first event", and each impl's own order of creation is kept).
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")
pytest.importorskip("aiosqlite")

from google.adk.errors import StaleSessionError  # noqa: E402
from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError  # noqa: E402
from google.adk.events.event import Event  # noqa: E402
from google.adk.events.event_actions import EventActions  # noqa: E402
from google.adk.sessions import (  # noqa: E402
    DatabaseSessionService,
    InMemorySessionService,
    Session,
)
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

from breakpilot_store.adk import BreakpilotSessionService  # noqa: E402

#: Event times: well after every session's creation, half a second apart.
T0 = float(int(time.time()) + 1000)
BOTH = ("memory", "database")
DB_ONLY = ("database",)


def ev(
    i: int,
    text: str = "",
    *,
    author: str = "user",
    delta: dict[str, Any] | None = None,
    partial: bool | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """An event's constructor arguments (each impl gets its own Event object)."""
    return {
        "id": f"e{i}",
        "invocation_id": "inv-1",
        "author": author,
        "timestamp": T0 + i / 2 if ts is None else ts,
        "content": {"role": "user" if author == "user" else "model", "parts": [{"text": text}]},
        "actions": {"state_delta": delta or {}},
        "partial": partial,
    }


def make_event(spec: dict[str, Any]) -> Event:
    spec = dict(spec)
    content = types.Content(
        role=spec["content"]["role"], parts=[types.Part(**p) for p in spec["content"]["parts"]]
    )
    return Event(
        id=spec["id"],
        invocation_id=spec["invocation_id"],
        author=spec["author"],
        timestamp=spec["timestamp"],
        content=content,
        actions=EventActions(state_delta=dict(spec["actions"]["state_delta"])),
        partial=spec["partial"],
    )


A, U = "app", "u1"

# Each op: (verb, args...). Sessions created or loaded are held under a name ("h")
# so that later appends can go through that very object (as a Runner does).
SCENARIOS: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {
    "create_get_list_delete": (
        BOTH,
        [
            ("create", "h1", A, U, "s1", {"k": "v"}),
            ("create", "h2", A, U, "s2", None),
            ("create", "h3", A, "u2", "s3", {"n": 1}),
            ("get", A, U, "s1", None),
            ("get", A, U, "missing", None),
            ("list", A, U),
            ("list", A, None),
            ("list", "other-app", None),
            ("delete", A, U, "s2"),
            ("delete", A, U, "never-existed"),
            ("list", A, U),
            ("get", A, U, "s2", None),
        ],
    ),
    "duplicate_id_refused": (
        BOTH,
        [
            ("create", "h1", A, U, "s1", {"x": 1}),
            ("create", "h2", A, U, "s1", {"x": 2}),
            ("get", A, U, "s1", None),
            ("create", "h3", A, "u2", "s1", None),  # same id, other user: fine
            ("list", A, None),
        ],
    ),
    "scoped_state": (
        BOTH,
        [
            ("create", "h1", A, U, "s1", {"app:theme": "dark", "user:lang": "fr", "k": 1}),
            ("create", "h2", A, U, "s2", {"temp:scratch": 1, "other": True}),
            ("create", "h3", A, "u2", "s3", None),
            ("get", A, U, "s2", None),
            ("get", A, "u2", "s3", None),
            ("append", "h1", ev(1, "hi", delta={"app:theme": "light", "user:n": 2, "k": 3})),
            ("append", "h1", ev(2, "t", delta={"temp:t": "x", "k": 4})),
            ("held", "h1"),
            ("get", A, U, "s1", None),
            ("get", A, U, "s2", None),
            ("get", A, "u2", "s3", None),
            ("user_state", A, U),
            ("user_state", A, "nobody"),
            ("list", A, None),
        ],
    ),
    "events_and_config": (
        BOTH,
        [
            ("create", "h", A, U, "s", None),
            *[("append", "h", ev(i, f"m{i}", author="user" if i % 2 else "bot")) for i in range(6)],
            ("held", "h"),
            ("get", A, U, "s", None),
            ("get", A, U, "s", {"num_recent_events": 0}),
            ("get", A, U, "s", {"num_recent_events": 1}),
            ("get", A, U, "s", {"num_recent_events": 4}),
            ("get", A, U, "s", {"num_recent_events": 100}),
            ("get", A, U, "s", {"after_timestamp": T0 + 1.5}),
            ("get", A, U, "s", {"after_timestamp": T0 + 1.4}),
            ("get", A, U, "s", {"after_timestamp": T0 + 1000}),
            ("get", A, U, "s", {"after_timestamp": T0 + 0.5, "num_recent_events": 2}),
            ("list", A, U),
        ],
    ),
    "empty_session_config": (
        BOTH,
        [
            ("create", "h", A, U, "s", {"a": [1, 2]}),
            ("get", A, U, "s", {"num_recent_events": 0}),
            ("get", A, U, "s", {"num_recent_events": 5}),
            ("get", A, U, "s", {"after_timestamp": T0}),
        ],
    ),
    "partial_events_not_stored": (
        BOTH,
        [
            ("create", "h", A, U, "s", None),
            ("append", "h", ev(1, "stream", partial=True, delta={"k": 1})),
            ("append", "h", ev(2, "final", partial=False)),
            ("held", "h"),
            ("get", A, U, "s", None),
        ],
    ),
    "wrong_app_or_user": (
        BOTH,
        [
            ("create", "h", A, U, "s", {"k": 1}),
            ("get", "other", U, "s", None),
            ("get", A, "other", "s", None),
            ("forge", "f1", A, "other", "s"),
            ("append", "f1", ev(1, "x")),
            ("forge", "f2", "other", U, "s"),
            ("append", "f2", ev(2, "x")),
            ("get", A, U, "s", None),
        ],
    ),
    "stale_session_refused": (
        DB_ONLY,
        [
            ("create", "h", A, U, "s", None),
            ("load", "r1", A, U, "s"),
            ("load", "r2", A, U, "s"),
            ("append", "r1", ev(1, "first writer", delta={"k": 1})),
            ("append", "r2", ev(2, "stale writer", delta={"k": 2})),
            ("get", A, U, "s", None),
            ("load", "r3", A, U, "s"),
            ("append", "r3", ev(3, "reloaded", delta={"k": 3})),
            ("append", "h", ev(4, "created object is stale too")),
            ("get", A, U, "s", None),
        ],
    ),
    "deleted_then_recreated": (
        DB_ONLY,
        [
            ("create", "h", A, U, "s", None),
            ("append", "h", ev(1, "old")),
            ("delete", A, U, "s"),
            ("append", "h", ev(2, "to a deleted session")),
            ("create", "h2", A, U, "s", {"fresh": True}),
            ("get", A, U, "s", None),
            ("append", "h2", ev(3, "new")),
            ("get", A, U, "s", None),
        ],
    ),
    # Found by the hostile campaign: times beyond datetime's years raised ValueError.
    # ADK's DatabaseSessionService raises ValueError itself; the in-memory one answers.
    "after_timestamp_beyond_the_years": (
        ("memory",),
        [
            ("create", "h", A, U, "s", None),
            *[("append", "h", ev(i, f"m{i}")) for i in range(3)],
            ("get", A, U, "s", {"after_timestamp": 1e15}),
            ("get", A, U, "s", {"after_timestamp": 253402300800.0}),
            ("get", A, U, "s", {"after_timestamp": -1e12}),
            ("get", A, U, "s", {"after_timestamp": float("inf")}),
            ("get", A, U, "s", {"after_timestamp": float("-inf")}),
        ],
    ),
    "unicode_and_large": (
        BOTH,
        [
            ("create", "h", A, "ユーザー", "séance-🙂", {"clé": "värde ✓", "user:名前": "太郎"}),
            ("append", "h", ev(1, "héllo 🙂 日本語 עברית")),
            ("append", "h", ev(2, "x" * 300_000, author="bot")),
            ("get", A, "ユーザー", "séance-🙂", {"num_recent_events": 1}),
            ("get", A, "ユーザー", "séance-🙂", None),
            ("list", A, None),
        ],
    ),
}


def normalise_session(session: Session | None) -> Any:
    if session is None:
        return None
    times = {e.timestamp for e in session.events}
    t = session.last_update_time
    return {
        "id": session.id,
        "app": session.app_name,
        "user": session.user_id,
        "state": copy.deepcopy(session.state),
        "events": [e.model_dump(mode="json", exclude_none=True) for e in session.events],
        # Creation time is each run's clock; event times are the scenario's.
        "last_update_time": t if t >= T0 or t in times else "at creation",
    }


def error_kind(exc: BaseException) -> str:
    for kind in (AlreadyExistsError, SessionNotFoundError, StaleSessionError):
        if isinstance(exc, kind):
            return kind.__name__
    raise exc


async def play(service: Any, ops: list[tuple[Any, ...]]) -> list[Any]:
    held: dict[str, Session] = {}
    out: list[Any] = []
    for op in ops:
        verb, args = op[0], op[1:]
        try:
            match verb:
                case "create":
                    name, app, user, sid, state = args
                    held[name] = await service.create_session(
                        app_name=app, user_id=user, session_id=sid, state=state
                    )
                    out.append(("create", normalise_session(held[name])))
                case "get":
                    app, user, sid, config = args
                    got = await service.get_session(
                        app_name=app,
                        user_id=user,
                        session_id=sid,
                        config=None if config is None else GetSessionConfig(**config),
                    )
                    out.append(("get", normalise_session(got)))
                case "load":
                    name, app, user, sid = args
                    held[name] = await service.get_session(
                        app_name=app, user_id=user, session_id=sid
                    )
                case "forge":
                    name, app, user, sid = args
                    held[name] = Session(app_name=app, user_id=user, id=sid)
                case "list":
                    app, user = args
                    listed = await service.list_sessions(app_name=app, user_id=user)
                    out.append(("list", [normalise_session(s) for s in listed.sessions]))
                case "delete":
                    app, user, sid = args
                    out.append(
                        (
                            "delete",
                            await service.delete_session(
                                app_name=app, user_id=user, session_id=sid
                            ),
                        )
                    )
                case "append":
                    name, spec = args
                    event = await service.append_event(held[name], make_event(spec))
                    out.append(("append", event.model_dump(mode="json", exclude_none=True)))
                case "held":
                    out.append(("held", normalise_session(held[args[0]])))
                case "user_state":
                    app, user = args
                    out.append(
                        ("user_state", await service.get_user_state(app_name=app, user_id=user))
                    )
        except Exception as exc:  # noqa: BLE001 - the kind is the answer compared
            out.append((verb, "error", error_kind(exc)))
    return out


Maker = Callable[[Path], Any]

REFERENCES: dict[str, Maker] = {
    "memory": lambda path: InMemorySessionService(),
    "database": lambda path: DatabaseSessionService(f"sqlite+aiosqlite:///{path / 'adk.db'}"),
}


async def run_with(make: Maker, path: Path, ops: list[tuple[Any, ...]]) -> list[Any]:
    service = make(path)
    try:
        return await play(service, ops)
    finally:
        if hasattr(service, "close"):
            await service.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_results_as_adk_services(name: str, backend_url: str, tmp_path: Path) -> None:
    """Ours on every backend (SQLite file, PostgreSQL) against ADK's own services."""
    refs, ops = SCENARIOS[name]
    ours = asyncio.run(run_with(lambda p: BreakpilotSessionService(backend_url), tmp_path, ops))
    assert any(entry[0] in ("get", "list", "held") for entry in ours)
    for ref in refs:
        reference = asyncio.run(run_with(REFERENCES[ref], _dir(tmp_path, ref), ops))
        assert ours == reference, ref


def _dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(exist_ok=True)
    return path


def test_concurrent_appends_same_as_database_service(tmp_path: Path) -> None:
    """Tasks append through one shared session object and through sessions of their own."""

    async def run(service: Any) -> Any:
        shared = await service.create_session(app_name=A, user_id=U, session_id="shared")
        own = [
            await service.create_session(app_name=A, user_id=U, session_id=f"own{t}")
            for t in range(10)
        ]

        async def task(t: int) -> None:
            for k in range(3):
                i = t * 10 + k
                await service.append_event(shared, make_event(ev(i, f"{t}-{k}")))
                await service.append_event(own[t], make_event(ev(i, f"{t}-{k}", delta={"k": k})))

        await asyncio.gather(*(task(t) for t in range(10)))
        result = []
        for sid in ["shared", *(f"own{t}" for t in range(10))]:
            got = await service.get_session(app_name=A, user_id=U, session_id=sid)
            result.append((sid, got.state, sorted(e.id for e in got.events)))
            # Each task's own events are in its order.
            ids = [e.id for e in got.events]
            for t in range(10):
                mine = [x for x in ids if x.startswith(f"e{t}") and len(x) == len(f"e{t}0")]
                assert mine == sorted(mine)
        await service.close()
        return result

    ours = asyncio.run(run(BreakpilotSessionService(tmp_path / "ours.db")))
    reference = asyncio.run(run(REFERENCES["database"](_dir(tmp_path, "db"))))
    assert ours == reference
    assert len(ours[0][2]) == 30


def test_operator_view_of_adk_tables(tmp_path: Path) -> None:
    path = tmp_path / "ours.db"

    async def run() -> None:
        service = BreakpilotSessionService(path)
        s = await service.create_session(
            app_name="my:app", user_id="u%1", session_id="s1", state={"app:a": 1, "user:b": 2}
        )
        await service.append_event(s, make_event(ev(1, "hello", delta={"k": "v", "temp:t": 0})))
        await service.append_event(s, make_event(ev(2, "partial", partial=True)))
        await service.close()

    asyncio.run(run())
    raw = sqlite3.connect(path)
    try:
        key = "adk:my%3Aapp:u%251:s1"
        assert raw.execute(
            "SELECT seq, name, json_extract(data, '$.id'), "
            "json_extract(data, '$.content.parts[0].text'), "
            "json_extract(data, '$.actions.state_delta') FROM checkpoints WHERE session_id = ?",
            (key,),
        ).fetchall() == [(1, "user", "e1", "hello", '{"k":"v"}')]
        assert raw.execute(
            "SELECT app_name, user_id, session_id, store_session_id, state, revision "
            "FROM adk_sessions"
        ).fetchall() == [("my:app", "u%1", "s1", key, '{"k":"v"}', 1)]
        assert raw.execute("SELECT app_name, state FROM adk_app_states").fetchall() == [
            ("my:app", '{"a":1}')
        ]
        assert raw.execute("SELECT app_name, user_id, state FROM adk_user_states").fetchall() == [
            ("my:app", "u%1", '{"b":2}')
        ]
    finally:
        raw.close()
