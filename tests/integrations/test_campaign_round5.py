"""What our own hostile round 5 found in the integrations, checked on both backends.

* ``fork_session``/``copy_session`` of a LangGraph thread into a session id holding
  ``|`` or ``%`` made a thread the saver could neither read nor write (revision 0008's
  escaping was not applied), and into ``oai:...`` one that took another integration's
  session;
* an ADK ``create_session`` over a store session that a fork or import had filled
  returned those rows as its events;
* the saver's ``list`` with ``limit=0`` and a filter, or a negative limit, returned a
  checkpoint; a filter ``{"k": None}`` did not match metadata lacking ``k``;
  ``checkpoint_id: ""`` was refused where LangGraph's savers read "the newest"; a
  checkpoint with an int id was stored and then unreadable; one without ``id`` was a
  bare ``KeyError``;
* ADK: an event time beyond the years 1-9999 was a bare ``ValueError``;
  ``create_session(session_id="")`` was refused where ADK's services make an id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.adk.events.event import Event
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

from breakpilot_store import (
    CheckpointStore,
    CheckpointTypeError,
    CheckpointValueError,
)
from breakpilot_store.adk import AdkSessionExistsError, BreakpilotSessionService
from breakpilot_store.langgraph import BreakpilotSaver


def _cfg(thread: str, ns: str = "", **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, **extra}}


def _fill(saver: Any) -> None:
    """Thread ``t``: three checkpoints, one lacking the metadata key ``x``."""
    config = _cfg("t")
    for step, meta in enumerate(
        [{"source": "input"}, {"source": "loop", "x": None}, {"source": "loop"}]
    ):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"step": step}
        config = saver.put(config, checkpoint, {**meta, "step": step}, {})


def test_forks_and_copies_of_a_thread_keep_to_the_naming_rule(backend_url: str, raw: Any) -> None:
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        _fill(saver)
        newest = saver.get_tuple(_cfg("t")).checkpoint
        before = raw().dump()
        for bad, hint in [("x|y", "x%7Cy"), ("p%q", "p%25q"), ("oai:u1", None)]:
            for attempt in (
                lambda d: store.fork_session("t:3", d),
                lambda d: store.copy_session("t", d),
            ):
                with pytest.raises(CheckpointValueError, match="cannot name one") as caught:
                    attempt(bad)
                if hint is not None:
                    assert f"use {hint!r}" in str(caught.value)
                else:
                    assert "use" not in str(caught.value).rsplit(")", 1)[-1]
        assert raw().dump() == before  # refused before anything was copied
        # The escaped form is the thread "x|y": the saver reads and writes it.
        store.fork_session("t:3", "x%7Cy")
        store.copy_session("t", "p%25q")
        for thread in ("x|y", "p%q"):
            assert saver.get_tuple(_cfg(thread)).checkpoint == newest
            assert len(list(saver.list(_cfg(thread)))) == 3
            saver.put(_cfg(thread), empty_checkpoint(), {"step": 9}, {})
            assert len(list(saver.list(_cfg(thread)))) == 4


def test_an_adk_session_never_takes_rows_it_did_not_write(backend_url: str, raw: Any) -> None:
    async def scenario(store: CheckpointStore, service: BreakpilotSessionService) -> None:
        s1 = await service.create_session(app_name="app", user_id="u", session_id="s1")
        for i in range(2):
            await service.append_event(s1, Event(author="user", invocation_id="i", id=f"e{i}"))
        store.fork_session("adk:app:u:s1:2", "adk:app:u:s2")
        before = raw().dump()
        with pytest.raises(AdkSessionExistsError, match="already holds checkpoints"):
            await service.create_session(app_name="app", user_id="u", session_id="s2")
        assert raw().dump() == before
        assert await service.get_session(app_name="app", user_id="u", session_id="s2") is None
        # Once that store session is gone, the id is free again, and empty.
        store.delete_session("adk:app:u:s2")
        made = await service.create_session(app_name="app", user_id="u", session_id="s2")
        got = await service.get_session(app_name="app", user_id="u", session_id="s2")
        assert made.events == [] and got is not None and got.events == []

    _with_adk(backend_url, scenario)


def test_adk_times_and_empty_ids_as_adks_own_services(backend_url: str, raw: Any) -> None:
    async def scenario(store: CheckpointStore, service: BreakpilotSessionService) -> None:
        made = await service.create_session(app_name="app", user_id="u", session_id="")
        assert len(made.id) == 36  # a uuid, as InMemorySessionService makes
        got = await service.get_session(app_name="app", user_id="u", session_id=made.id)
        assert got is not None
        before = raw().dump()
        for bad in (253402300800.0, 1e15, -1e12):
            with pytest.raises(CheckpointValueError, match=r"event's timestamp .* years 1-9999"):
                await service.append_event(
                    got, Event(author="user", invocation_id="i", timestamp=bad)
                )
        assert raw().dump() == before
        event = await service.append_event(got, Event(author="user", invocation_id="i"))
        again = await service.get_session(app_name="app", user_id="u", session_id=made.id)
        assert again is not None and [e.id for e in again.events] == [event.id]

    _with_adk(backend_url, scenario)


def _with_adk(backend_url: str, scenario: Any) -> None:
    async def run() -> None:
        with CheckpointStore(backend_url) as store:
            async with BreakpilotSessionService(store) as service:
                await scenario(store, service)

    asyncio.run(run())


def test_saver_lists_and_reads_as_langgraphs_reference(backend_url: str, raw: Any) -> None:
    reference = InMemorySaver()
    _fill(reference)
    with CheckpointStore(backend_url) as store, BreakpilotSaver(store) as saver:
        _fill(saver)

        def ids(which: Any, **kw: Any) -> list[int]:
            return [t.metadata["step"] for t in which.list(_cfg("t"), **kw)]

        for kw in (
            {"limit": 0},
            {"limit": -1},
            {"limit": 0, "filter": {"source": "loop"}},
            {"limit": -1, "filter": {"source": "loop"}},
            {"filter": {"x": None}},
            {"filter": {"x": None}, "limit": 2},
            {"filter": {"source": "loop", "x": None}},
            {"filter": {"missing": None}},
            {"filter": {"missing": 1}},
        ):
            assert ids(saver, **kw) == ids(reference, **kw), kw
        newest = saver.get_tuple(_cfg("t"))
        assert saver.get_tuple(_cfg("t", checkpoint_id="")) == newest
        assert [t.config for t in saver.list(_cfg("t", checkpoint_id=""))] == [
            t.config for t in saver.list(_cfg("t"))
        ]
        before = raw().dump()
        odd = empty_checkpoint()
        odd["id"] = 12345  # type: ignore[typeddict-item]
        with pytest.raises(CheckpointTypeError, match=r"checkpoint\['id'\] must be a str"):
            saver.put(_cfg("t"), odd, {}, {})
        no_id = {key: value for key, value in empty_checkpoint().items() if key != "id"}
        with pytest.raises(CheckpointValueError, match="checkpoint has no 'id'"):
            saver.put(_cfg("t"), no_id, {}, {})  # type: ignore[arg-type]
        no_values = {k: v for k, v in empty_checkpoint().items() if k != "channel_values"}
        saved = saver.put(_cfg("t"), no_values, {}, {})  # type: ignore[arg-type]
        assert saver.get_tuple(saved).checkpoint["channel_values"] == {}
        assert len(raw().dump()) == len(before) + 1  # the one put that was not refused
