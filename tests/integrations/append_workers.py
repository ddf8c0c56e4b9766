"""A process that appends to sessions (:func:`worker`, the target of a forked process).

It waits for the start signal (so that all workers write at once), then appends ``N``
SDK items to two sessions and ``N`` ADK events, one call each, SDK and ADK side by
side, and exits with the number of calls that failed. The processes are forked from
the test, which has imported both frameworks already: importing them is seconds of CPU
per process, and the point is the writes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any


def sdk_item(worker: int, k: int) -> dict[str, str]:
    return {"role": "user", "content": f"{worker}-{k}"}


async def sdk(url: str, worker: int, n: int) -> int:
    from breakpilot_store import AsyncCheckpointStore
    from breakpilot_store.openai_agents import BreakpilotSession

    errors = 0
    async with AsyncCheckpointStore(url) as store:
        shared = BreakpilotSession("shared", store=store)
        own = BreakpilotSession(f"w{worker}", store=store)
        for k in range(n):
            for session in (shared, own):
                try:
                    await session.add_items([sdk_item(worker, k)])
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    print(repr(exc), file=sys.stderr)
                    errors += 1
    return errors


async def adk_append(service: object, worker: int, n: int, label: str) -> int:
    """Append ``n`` events to the caller's own session, with scoped state deltas."""
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    errors = 0
    session = await service.create_session(app_name="app", user_id="u", session_id=label)
    for k in range(n):
        event = Event(
            id=f"{label}-{k}",
            invocation_id="inv",
            author="user",
            timestamp=time.time(),
            content=types.Content(role="user", parts=[types.Part(text=f"{worker}-{k}")]),
            actions=EventActions(
                state_delta={"n": k, f"user:last_{label}": k, f"app:last_{label}": k}
            ),
        )
        try:
            await service.append_event(session, event)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            print(repr(exc), file=sys.stderr)
            errors += 1
    return errors


async def adk(url: str, worker: int, n: int) -> int:
    from breakpilot_store.adk import BreakpilotSessionService

    async with BreakpilotSessionService(url) as service:
        return await adk_append(service, worker, n, f"w{worker}")


async def both(url: str, worker: int, n: int) -> int:
    return sum(await asyncio.gather(sdk(url, worker, n), adk(url, worker, n)))


def worker(url: str, number: int, n: int, go: Any) -> None:
    """Process body: wait for ``go`` (a multiprocessing Event), write, exit with the failures."""
    go.wait(60)
    failed = asyncio.run(both(url, number, n))
    sys.stderr.flush()
    os._exit(min(failed, 100))
