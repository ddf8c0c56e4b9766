"""Hostile use of the async API and the framework sessions (round 3 of the campaign).

Found:

* Several event loops (one per thread) opening one ``AsyncCheckpointStore`` at once:
  the open was a future of the first loop, and the others got ``RuntimeError`` ("got
  Future attached to a different loop"), although a SQLite store serves any loop.
* An async iterable given to ``import_checkpoints`` that writes to the same store: the
  write queued behind the import, which waited for the iterable's next item: a hang
  that not even ``asyncio.wait_for`` could end (cancellation waits for a taken write).
* Cancelling an import fed by a slow async iterable waited for the whole iterable
  (seconds) and then committed it; on PostgreSQL the cancellation returned at once and
  the import committed later, behind the caller's next read.
* ADK ``create_session(state=...)`` with a non-str key or a non-dict: ``AttributeError``
  or ``UnicodeEncodeError`` from inside ADK's helper; OpenAI ``get_items(2**70)``:
  ``OverflowError``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from breakpilot_store import (
    AsyncCheckpointStore,
    BreakpilotStoreError,
    CheckpointStore,
    CheckpointTypeError,
    CheckpointValueError,
    StoreBusyError,
)

from .conftest import counters, integrity

ENTRY_TIME = "2026-01-01T00:00:00+00:00"


def _entry(session: str, seq: int) -> dict[str, Any]:
    return {"id": f"{session}:{seq}", "name": "n", "timestamp": ENTRY_TIME, "data": {"i": seq}}


def test_many_event_loops_open_one_store_at_once(tmp_path):
    path = tmp_path / "loops.db"
    store = AsyncCheckpointStore(path)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    async def agent(k: int) -> None:
        for i in range(25):
            await store.create("shared", "step", {"k": k, "i": i})

    def thread(k: int) -> None:
        start.wait()
        try:
            asyncio.run(agent(k))
        except BaseException as exc:  # noqa: BLE001 - the finding
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    asyncio.run(store.close())
    assert errors == []
    assert counters(path)["shared"] == (100, 100)  # gapless: 1..100, all held
    assert integrity(path) == "ok"


@pytest.mark.parametrize("memory", [False, True], ids=["file", "memory"])
def test_an_import_whose_iterable_writes_to_the_same_store_fails_fast(tmp_path, memory):
    url = "sqlite://" if memory else str(tmp_path / "reentrant.db")

    async def main() -> tuple[int, int]:
        async with AsyncCheckpointStore(url) as store:
            await store.create("other", "n", {})

            async def entries():
                yield _entry("imp", 1)
                await store.create("other", "inside", {})  # would wait for the import
                yield _entry("imp", 2)

            with pytest.raises(StoreBusyError, match="async iterable of its own import"):
                await asyncio.wait_for(store.import_checkpoints("imp", entries()), 30)
            # All or nothing, and the store goes on working.
            await store.create("other", "after", {})
            return await store.count("imp"), await store.count("other")

    started = time.monotonic()
    assert asyncio.run(main()) == (0, 2)
    assert time.monotonic() - started < 25  # a safety bound: it hung forever before


def test_a_cancelled_import_stops_reading_and_writes_nothing(tmp_path):
    path = tmp_path / "cancel.db"
    CheckpointStore(path).create("other", "n", {})

    async def main() -> tuple[float, int, int]:
        async with AsyncCheckpointStore(path) as store:

            async def slow():
                for i in range(1, 100_000):
                    yield _entry("imp", i)
                    await asyncio.sleep(0)

            task = asyncio.create_task(store.import_checkpoints("imp", slow()))
            await asyncio.sleep(0.2)
            task.cancel()
            cancelled_at = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            waited = time.monotonic() - cancelled_at
            held = await store.count("imp")  # the caller's next read shows what happened
            await store.create("imp", "after", {})
            return waited, held, await store.count("imp")

    waited, held, after = asyncio.run(main())
    assert held == 0 and after == 1
    assert waited < 5  # a safety bound: it read all 100,000 items (seconds) before
    assert counters(path)["imp"] == (1, 1)
    assert integrity(path) == "ok"


def test_framework_sessions_refuse_hostile_values_typed(tmp_path):
    pytest.importorskip("google.adk")
    pytest.importorskip("agents")
    from breakpilot_store.adk import BreakpilotSessionService
    from breakpilot_store.openai_agents import BreakpilotSession

    store = CheckpointStore(tmp_path / "fw.db")

    async def main() -> list[str]:
        failures = []
        service = BreakpilotSessionService(store)
        for state in ({5: 1}, {"\ud800": 1}, {("t",): 1}, [1], "state", 5.0):
            try:
                await service.create_session(app_name="app", user_id="u", state=state)
            except (CheckpointTypeError, CheckpointValueError):
                pass
            except Exception as exc:  # noqa: BLE001 - the finding
                failures.append(f"state {state!r}: {type(exc).__name__}: {exc}")
            else:
                failures.append(f"state {state!r}: accepted")
        assert await service.list_sessions(app_name="app", user_id="u") is not None
        session = BreakpilotSession("s", store=store)
        await session.add_items([{"role": "user", "content": "hi"}])
        for limit in (2**70, 2**63, -(2**70)):
            try:
                assert len(await session.get_items(limit)) == 1  # more than held: all
            except BreakpilotStoreError as exc:
                failures.append(f"limit {limit}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the finding
                failures.append(f"limit {limit}: {type(exc).__name__}: {exc}")
        await session.aclose()  # their async fronts' threads; the sync store stays open
        await service.close()
        return failures

    assert asyncio.run(main()) == []
    # Nothing of the refused sessions was written.
    assert store.list_sessions(prefix="adk:") == []
    store.close()


def test_a_failed_open_is_tried_again_on_the_next_call(tmp_path):
    # The constructor does no I/O, so a transient failure (here: the directory is not
    # there yet; on PostgreSQL a terminated connection) surfaces at the first call.
    # It was remembered: every later call raised it, although a new sync store works.
    path = tmp_path / "later" / "a.db"

    async def main() -> int:
        store = AsyncCheckpointStore(path)
        with pytest.raises(BreakpilotStoreError):
            await store.create("s", "n", {})
        path.parent.mkdir()
        cp = await store.create("s", "n", {})
        await store.close()
        return cp.seq

    assert asyncio.run(main()) == 1
    assert counters(path)["s"] == (1, 1)
