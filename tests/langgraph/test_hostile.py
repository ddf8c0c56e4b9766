"""Hostile arguments to the LangGraph saver (round 3 of the campaign).

Found: a config that is not a dict (``AttributeError``), a ``limit`` that is not an
int or beyond 64 bits (``ValueError``/``OverflowError``), checkpoint ids and task ids
with lone surrogates or as huge ints (``UnicodeEncodeError``/``OverflowError``),
metadata and pending writes holding lone surrogates (orjson's ``TypeError``), and run
or thread id lists that are not lists (``TypeError``). Each is now a typed error with
the database unchanged, sync and async.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from breakpilot_store import BreakpilotStoreError
from breakpilot_store.langgraph import BreakpilotSaver
from tests.reliability.conftest import dump

HOSTILE: list[Any] = [
    "\ud800",
    "a\x00b",
    "x" * 60_000,
    "",
    None,
    5,
    2**70,
    float("nan"),
    b"bytes",
    ["list"],
    object(),
    True,
]


def _cfg(**extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": "t", "checkpoint_ns": "", **extra}}


META = {"source": "input", "step": 0}


def test_every_saver_call_with_hostile_values(tmp_path):
    path = tmp_path / "lg.db"
    saver = BreakpilotSaver(str(path))
    first = empty_checkpoint()
    saver.put(_cfg(), first, META, {})
    calls = {
        "get config": lambda h: saver.get_tuple(h),
        "get thread_id": lambda h: saver.get_tuple(_cfg(thread_id=h)),
        "get checkpoint_ns": lambda h: saver.get_tuple(_cfg(checkpoint_ns=h)),
        "get checkpoint_id": lambda h: saver.get_tuple(_cfg(checkpoint_id=h)),
        "put thread_id": lambda h: saver.put(_cfg(thread_id=h), empty_checkpoint(), META, {}),
        "put metadata": lambda h: saver.put(_cfg(), empty_checkpoint(), {**META, "k": h}, {}),
        "put value": lambda h: saver.put(
            _cfg(), {**empty_checkpoint(), "channel_values": {"c": h}}, META, {}
        ),
        "list limit": lambda h: list(saver.list(_cfg(), limit=h)),
        "list before": lambda h: list(saver.list(_cfg(), before=_cfg(checkpoint_id=h))),
        "list filter": lambda h: list(saver.list(_cfg(), filter=h)),
        "list filter value": lambda h: list(saver.list(_cfg(), filter={"k": h})),
        "put_writes task_id": lambda h: saver.put_writes(
            _cfg(checkpoint_id=first["id"]), [("c", 1)], h
        ),
        "put_writes channel": lambda h: saver.put_writes(
            _cfg(checkpoint_id=first["id"]), [(h, 1)], "task"
        ),
        "put_writes value": lambda h: saver.put_writes(
            _cfg(checkpoint_id=first["id"]), [("c", h)], "task"
        ),
        "delete_thread": lambda h: saver.delete_thread(h),
        "copy_thread": lambda h: saver.copy_thread("t", h),
        "delete_for_runs": lambda h: saver.delete_for_runs(h),
        "prune": lambda h: saver.prune(h),
        "keep_last": lambda h: BreakpilotSaver(str(path), keep_last=h),
    }
    failures = []
    for label, call in calls.items():
        for value in HOSTILE:
            before = dump(path)
            try:
                call(value)
            except BreakpilotStoreError:
                if dump(path) != before:
                    failures.append(f"{label} {value!r:.30}: raised but changed the database")
            except Exception as exc:  # noqa: BLE001 - the finding
                failures.append(f"{label} {value!r:.30}: {type(exc).__name__}: {exc!s:.80}")

    async def async_calls() -> None:
        for value in HOSTILE:
            for label, make in {
                "aget_tuple thread_id": lambda h: saver.aget_tuple(_cfg(thread_id=h)),
                "aget_tuple checkpoint_id": lambda h: saver.aget_tuple(_cfg(checkpoint_id=h)),
                "aput_writes channel": lambda h: saver.aput_writes(
                    _cfg(checkpoint_id=first["id"]), [(h, 1)], "task"
                ),
            }.items():
                try:
                    await asyncio.wait_for(make(value), 30)
                except BreakpilotStoreError:
                    pass
                except Exception as exc:  # noqa: BLE001 - the finding
                    failures.append(f"{label} {value!r:.30}: {type(exc).__name__}: {exc!s:.80}")
            try:
                [t async for t in saver.alist(_cfg(), limit=value)]
            except BreakpilotStoreError:
                pass
            except Exception as exc:  # noqa: BLE001 - the finding
                failures.append(f"alist limit {value!r:.30}: {type(exc).__name__}: {exc!s:.80}")

    asyncio.run(async_calls())
    # What still works: the thread's checkpoint is there, "more than all" lists it.
    assert saver.get_tuple(_cfg()) is not None
    assert len(list(saver.list(_cfg(), limit=2**70))) >= 1
    saver.close()
    assert not failures, "\n".join(failures)
