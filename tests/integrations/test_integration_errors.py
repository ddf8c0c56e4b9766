"""Bad input to either integration: a typed error naming the problem, nothing written.

"Nothing written" is checked through a raw sqlite3 connection: every row of every table
is the same before and after the refused call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from breakpilot_store import (
    BreakpilotStoreError,
    CheckpointTypeError,
    CheckpointValueError,
    StoreClosedError,
    UnknownSessionError,
)

TABLES = ("sessions", "checkpoints", "adk_sessions", "adk_app_states", "adk_user_states")


def dump(path: Path) -> list[Any]:
    with sqlite3.connect(path) as raw:
        return [(t, raw.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()) for t in TABLES]


def test_sdk_refusals(tmp_path: Path) -> None:
    pytest.importorskip("agents")
    from breakpilot_store.openai_agents import BreakpilotSession

    path = tmp_path / "agents.db"
    with pytest.raises(CheckpointValueError, match="session_id must not be empty"):
        BreakpilotSession("", store=path)
    with pytest.raises(CheckpointTypeError, match="session_id must be a str"):
        BreakpilotSession(42, store=path)  # type: ignore[arg-type]
    with pytest.raises(CheckpointTypeError, match="store must be"):
        BreakpilotSession("s", store=3.5)  # type: ignore[arg-type]

    async def run() -> None:
        session = BreakpilotSession("s", store=path)
        await session.add_items([{"role": "user", "content": "kept"}])
        before = dump(path)
        bad: list[tuple[list[Any], type[Exception], str]] = [
            ([{"role": "user", "content": float("nan")}], CheckpointValueError, r"items\[0\]"),
            ([{"role": "user"}, {"t": (1, 2)}], CheckpointTypeError, r"items\[1\]\['t'\]"),
            (["just a string"], CheckpointTypeError, r"items\[0\] must be a dict"),
            ([{"n": 2**70}], CheckpointValueError, r"items\[0\]\[.n.\]"),
            ([{"s": "\ud800"}], CheckpointValueError, "surrogate"),
        ]
        for items, error, message in bad:
            with pytest.raises(error, match=message):
                await session.add_items(items)
            assert dump(path) == before
        assert await session.get_items() == [{"role": "user", "content": "kept"}]
        with pytest.raises(CheckpointTypeError, match="limit must be an int"):
            await session.get_items("3")  # type: ignore[arg-type]
        await session.aclose()
        with pytest.raises(StoreClosedError):
            await session.get_items()

    asyncio.run(run())


def test_adk_refusals(tmp_path: Path) -> None:
    pytest.importorskip("google.adk")
    from google.adk.errors import StaleSessionError
    from google.adk.errors.already_exists_error import AlreadyExistsError
    from google.adk.errors.session_not_found_error import SessionNotFoundError
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.adk.sessions import Session

    from breakpilot_store.adk import (
        AdkSessionExistsError,
        AdkSessionNotFoundError,
        AdkStaleSessionError,
        BreakpilotSessionService,
    )

    path = tmp_path / "agents.db"

    def event(i: int, delta: dict[str, Any] | None = None, **extra: Any) -> Event:
        return Event(
            id=f"e{i}",
            invocation_id="inv",
            author="user",
            timestamp=time.time(),
            actions=EventActions(state_delta=delta or {}),
            **extra,
        )

    async def run() -> None:
        service = BreakpilotSessionService(path)
        session = await service.create_session(
            app_name="app", user_id="u", session_id="s", state={"app:a": 1, "k": 1}
        )
        await service.append_event(session, event(1, {"k": 2}))
        before = dump(path)

        with pytest.raises(AdkSessionExistsError, match="already exists") as info:
            await service.create_session(
                app_name="app", user_id="u", session_id="s", state={"app:a": 99}
            )
        assert isinstance(info.value, AlreadyExistsError)
        assert isinstance(info.value, BreakpilotStoreError)
        for app, user in (("other", "u"), ("app", "other")):
            with pytest.raises(AdkSessionNotFoundError, match="not found") as missing:
                await service.append_event(Session(app_name=app, user_id=user, id="s"), event(2))
            assert isinstance(missing.value, SessionNotFoundError)
            assert isinstance(missing.value, UnknownSessionError)
        with pytest.raises(CheckpointValueError, match="nan|NaN"):
            await service.append_event(session, event(3, {"app:x": float("nan")}))
        with pytest.raises(CheckpointValueError, match="event"):
            await service.append_event(session, event(4, custom_metadata={"big": 2**70}))
        with pytest.raises(CheckpointValueError, match="app_name must not be empty"):
            await service.create_session(app_name="", user_id="u")
        with pytest.raises(CheckpointTypeError, match="user_id must be a str"):
            await service.get_session(app_name="app", user_id=7, session_id="s")  # type: ignore[arg-type]
        with pytest.raises(CheckpointValueError, match="nan|NaN"):
            await service.create_session(
                app_name="app", user_id="new", state={"user:v": float("inf")}
            )
        assert dump(path) == before  # none of the refused calls wrote anything
        assert session.state == {"app:a": 1, "k": 2}
        stale = await service.get_session(app_name="app", user_id="u", session_id="s")
        await service.append_event(session, event(5))
        after_append = dump(path)
        with pytest.raises(AdkStaleSessionError, match="reload the session") as info2:
            await service.append_event(stale, event(6, {"k": 3}))
        assert isinstance(info2.value, StaleSessionError)
        assert dump(path) == after_append
        await service.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("package", "framework", "extra"),
    [("openai_agents", "agents", "openai-agents"), ("adk", "google.adk", "adk")],
)
def test_missing_framework_names_the_extra(package: str, framework: str, extra: str) -> None:
    import subprocess
    import sys

    code = (
        "import sys, breakpilot_store\n"
        # The core never imports a framework.
        "assert not any(m == 'agents' or m.startswith('google.adk') for m in sys.modules)\n"
        f"sys.modules[{framework!r}] = None\n"
        f"import breakpilot_store.{package}\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"pip install 'breakpilot-store[{extra}]'" in done.stderr
