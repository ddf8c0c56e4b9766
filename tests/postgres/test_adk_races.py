"""ADK sessions on PostgreSQL under concurrent writers of one session.

Found by a hostile campaign (round 6): concurrent ``create_session`` calls of one id
failed with the primary key's raw ``DatabaseError`` instead of
``AdkSessionExistsError`` (the existence check cannot see an uncommitted create), and
``append_event`` deadlocked with ``delete_session`` (they locked the ADK row and the
store session's row in opposite orders).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from breakpilot_store import AsyncCheckpointStore, BreakpilotStoreError

pytest.importorskip("google.adk")

from google.adk.events.event import Event, EventActions  # noqa: E402

from breakpilot_store.adk import AdkSessionExistsError, BreakpilotSessionService  # noqa: E402
from breakpilot_store.adk.errors import (  # noqa: E402
    AdkSessionNotFoundError,
    AdkStaleSessionError,
)


def test_concurrent_creates_of_one_id_are_one_session_and_typed_refusals(
    pg_base_url: str, pg_schema: str, pg_raw: Any
) -> None:
    async def scenario() -> list[BaseException | object]:
        services = [
            BreakpilotSessionService(AsyncCheckpointStore(pg_base_url, schema=pg_schema))
            for _ in range(4)
        ]
        outcomes: list[BaseException | object] = []
        try:
            for n in range(20):
                outcomes += await asyncio.gather(
                    *(
                        s.create_session(app_name="app", user_id="u", session_id=f"s{n}")
                        for s in services
                    ),
                    return_exceptions=True,
                )
        finally:
            for s in services:
                await s.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) - len(errors) == 20  # one create of each id
    assert all(type(e) is AdkSessionExistsError for e in errors), {repr(e) for e in errors}
    assert pg_raw("SELECT count(*) FROM adk_sessions") == [(20,)]


def test_append_and_delete_of_one_session_do_not_deadlock(pg_base_url: str, pg_schema: str) -> None:
    failures: list[BaseException] = []

    async def scenario() -> int:
        a = BreakpilotSessionService(AsyncCheckpointStore(pg_base_url, schema=pg_schema))
        b = BreakpilotSessionService(AsyncCheckpointStore(pg_base_url, schema=pg_schema))
        await a.create_session(app_name="app", user_id="u", session_id="s")
        done = asyncio.Event()
        appended = 0

        async def appender() -> None:
            nonlocal appended
            while not done.is_set():
                session = await a.get_session(app_name="app", user_id="u", session_id="s")
                if session is None:
                    await asyncio.sleep(0)
                    continue
                event = Event(author="x", actions=EventActions(state_delta={"k": 1}))
                appended += 1  # tried: each may meet a delete
                try:
                    await a.append_event(session, event)
                except (AdkSessionNotFoundError, AdkStaleSessionError):
                    pass  # deleted, or deleted and made again, after it was read
                except BreakpilotStoreError as exc:
                    failures.append(exc)

        async def deleter() -> None:
            try:
                for _ in range(60):
                    try:
                        await b.delete_session(app_name="app", user_id="u", session_id="s")
                        await b.create_session(app_name="app", user_id="u", session_id="s")
                    except BreakpilotStoreError as exc:
                        failures.append(exc)
            finally:
                done.set()

        try:
            await asyncio.gather(appender(), deleter())
        finally:
            await a.close()
            await b.close()
        return appended

    appended = asyncio.run(scenario())
    assert failures == []
    assert appended > 0  # appends were tried against the deletes, not starved
