"""Every public entry point, every argument, values at the edge of their type.

Found by the campaign: lone surrogates in ids and prefixes raised ``UnicodeEncodeError``
(and ``get`` never checked the session part of an id); huge durations raised
``OverflowError``; an aware ``datetime(1, 1, 1, tzinfo=+01:00)`` became a vague
``DatabaseError``; ``import_checkpoints("a", None)`` a bare ``TypeError``; a 60,000
character prefix was an error on SQLite and ``[]`` on PostgreSQL. Here each public call
takes each hostile value in each argument position: it returns, or raises a
``BreakpilotStoreError`` with the database unchanged (checked raw), on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from breakpilot_store import (
    AsyncCheckpointManager,
    BreakpilotStoreError,
    CheckpointManager,
    CheckpointStore,
    CheckpointTypeError,
    CheckpointValueError,
)

PLUS_ONE = timezone(timedelta(hours=1))
MINUS_ONE = timezone(timedelta(hours=-1))

HOSTILE: list[Any] = [
    "\ud800",
    "\udcff:1",
    "ok:\udcff",
    "a\x00b",
    "x" * 60_000,
    "",
    "\x1b]0;pwned\x07",
    None,
    5,
    -1,
    2**70,
    float("nan"),
    b"bytes",
    ["list"],
    object(),
    timedelta(days=999_999_999),
    timedelta.max,
    timedelta.min,
    timedelta(0),
    datetime(1, 1, 1, tzinfo=PLUS_ONE),
    datetime(9999, 12, 31, 23, 59, tzinfo=MINUS_ONE),
    datetime(2026, 1, 1),  # naive
]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


ENTRY = {"id": "ok:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}

Call = Callable[[CheckpointStore, Any], object]

CALLS: dict[str, Call] = {
    "create session_id": lambda s, h: s.create(h, "n", {}),
    "create name": lambda s, h: s.create("ok", h, {}),
    "create data": lambda s, h: s.create("ok", "n", h),
    "create data key": lambda s, h: s.create("ok", "n", {h: 1} if _hashable(h) else {}),
    "create data value": lambda s, h: s.create("ok", "n", {"k": h}),
    "create metadata": lambda s, h: s.create("ok", "n", {}, h),
    "create compress_after": lambda s, h: s.create("ok", "n", {}, compress_after=h),
    "create max_checkpoints": lambda s, h: s.create("ok", "n", {}, max_checkpoints=h),
    "compress session_id": lambda s, h: s.compress(h),
    "compress compress_after": lambda s, h: s.compress("ok", compress_after=h),
    "compress max_checkpoints": lambda s, h: s.compress("ok", max_checkpoints=h),
    "clear": lambda s, h: s.clear(h),
    "delete_session": lambda s, h: s.delete_session(h),
    "import session_id": lambda s, h: s.import_checkpoints(h, [ENTRY]),
    "import entries": lambda s, h: s.import_checkpoints("ok", h),
    "import entry": lambda s, h: s.import_checkpoints("ok", [h]),
    "import id": lambda s, h: s.import_checkpoints("ok", [{**ENTRY, "id": h}]),
    "import foreign id": lambda s, h: s.import_checkpoints("ok", [{**ENTRY, "id": f"{h}:1"}]),
    "import name": lambda s, h: s.import_checkpoints("ok", [{**ENTRY, "name": h}]),
    "import timestamp": lambda s, h: s.import_checkpoints("ok", [{**ENTRY, "timestamp": h}]),
    "import data": lambda s, h: s.import_checkpoints("ok", [{**ENTRY, "data": h}]),
    "import origin_id": lambda s, h: s.import_checkpoints(
        "ok", [{**ENTRY, "id": "other:1", "origin_id": h}]
    ),
    "import on_entry": lambda s, h: s.import_checkpoints("ok", [ENTRY], on_entry=h),
    "import min_last_seq": lambda s, h: s.import_checkpoints("ok", [ENTRY], min_last_seq=h),
    "get": lambda s, h: s.get(h),
    "get session part": lambda s, h: s.get(f"{h}:1"),
    "get seq part": lambda s, h: s.get(f"ok:{h}"),
    "get_latest session_id": lambda s, h: s.get_latest(h),
    "get_latest name": lambda s, h: s.get_latest("ok", h),
    "list_checkpoints session_id": lambda s, h: s.list_checkpoints(h),
    "list_checkpoints name": lambda s, h: s.list_checkpoints("ok", name=h),
    "list_checkpoints since": lambda s, h: s.list_checkpoints("ok", since=h),
    "list_checkpoints start": lambda s, h: s.list_checkpoints("ok", start=h),
    "list_checkpoints end": lambda s, h: s.list_checkpoints("ok", end=h),
    "list_checkpoints limit": lambda s, h: s.list_checkpoints("ok", limit=h),
    "iter_checkpoints": lambda s, h: list(s.iter_checkpoints(h)),
    "count": lambda s, h: s.count(h),
    "summary": lambda s, h: s.summary(h),
    "export_chunks": lambda s, h: list(s.export_chunks(h)),
    "export_bytes": lambda s, h: list(s.export_bytes(h)),
    "export_json": lambda s, h: s.export_json(h),
    "list_sessions prefix": lambda s, h: s.list_sessions(prefix=h),
    "list_sessions idle_for": lambda s, h: s.list_sessions(idle_for=h),
    "session_info": lambda s, h: s.session_info(h),
    "prune idle_for": lambda s, h: s.prune_sessions(h, dry_run=True),
    "prune idle_for, for real": lambda s, h: s.prune_sessions(h, prefix="no-such-"),
    "prune prefix": lambda s, h: s.prune_sessions(timedelta(days=1), prefix=h, dry_run=True),
    "wal_checkpoint": lambda s, h: s.wal_checkpoint(h),
    "manager session_id": lambda s, h: CheckpointManager(h, store=s).get_all(),
    "manager get": lambda s, h: CheckpointManager("ok", store=s).get(h),
    "manager get_by_name": lambda s, h: CheckpointManager("ok", store=s).get_by_name(h),
    "manager get_since": lambda s, h: CheckpointManager("ok", store=s).get_since(h),
    "manager get_between start": lambda s, h: CheckpointManager("ok", store=s).get_between(
        h, datetime.now(timezone.utc)
    ),
    "manager get_between end": lambda s, h: CheckpointManager("ok", store=s).get_between(
        datetime(2000, 1, 1, tzinfo=timezone.utc), h
    ),
    "manager rollback_to": lambda s, h: CheckpointManager("ok", store=s).rollback_to(h),
    "manager import_checkpoints": lambda s, h: CheckpointManager("ok", store=s).import_checkpoints(
        h
    ),
    "manager create name": lambda s, h: CheckpointManager("ok2", store=s).create(h, {}),
    # Round 3: what landed since. ``lease=2**70`` raised OverflowError, a surrogate
    # owner UnicodeEncodeError at the lease's first write, ``run(5)`` a bare TypeError.
    "copy source": lambda s, h: s.copy_session(h, "copy-target"),
    "copy target": lambda s, h: s.copy_session("ok", h),
    "fork checkpoint_id": lambda s, h: s.fork_session(h, "fork-target"),
    "fork seq part": lambda s, h: s.fork_session(f"ok:{h}", "fork-target-2"),
    "fork target": lambda s, h: s.fork_session("ok:1", h),
    "run operation": lambda s, h: s.run(h),
    "manager lease": lambda s, h: CheckpointManager("leased", store=s, lease=h).close(),
    "manager lease_wait": lambda s, h: CheckpointManager(
        "leased", store=s, lease=1.0, lease_wait=h
    ).close(),
    "manager owner": lambda s, h: CheckpointManager("leased", store=s, lease=1.0, owner=h).close(),
    "manager takeover": lambda s, h: CheckpointManager(
        "leased", store=s, lease=1.0, takeover=h
    ).close(),
}

#: Calls that write when they succeed (the others must leave the database as it was).
WRITES = (
    "create",
    "import",
    "compress",
    "clear",
    "delete",
    "manager",
    "prune idle_for, for",
    "copy",
    "fork",
)


def test_every_public_call_with_every_hostile_value(backend_url: str, raw: Any) -> None:
    store = CheckpointStore(backend_url, busy_timeout=5)
    store.create("ok", "n", {"v": 1})
    store.create("ok", "n", {"v": 2})
    db = raw()
    failures = []
    for label, call in CALLS.items():
        for value in HOSTILE:
            before = db.dump()
            try:
                call(store, value)
            except BreakpilotStoreError:
                if db.dump() != before:
                    failures.append(f"{label} {value!r:.40}: raised but changed the database")
            except Exception as exc:  # noqa: BLE001 - the finding
                failures.append(f"{label} {value!r:.40}: untyped {type(exc).__name__}: {exc}")
            else:
                if not label.startswith(WRITES) and db.dump() != before:
                    failures.append(f"{label} {value!r:.40}: a read changed the database")
    store.close()
    assert not failures, "\n".join(failures)


def test_edge_values_mean_the_same_on_both_backends(backend_url: str) -> None:
    store = CheckpointStore(backend_url, busy_timeout=5)
    store.create("ok", "n", {})
    store.create("x" * 1024, "n", {})
    # A prefix longer than any id matches nothing (SQLite refused the LIKE pattern).
    assert store.list_sessions(prefix="x" * 60_000) == []
    assert store.list_sessions(prefix="x" * 1025) == []
    assert [i.session_id for i in store.list_sessions(prefix="x" * 1024)] == ["x" * 1024]
    assert store.prune_sessions(timedelta(seconds=1), prefix="x" * 60_000) == []
    # Longer idle than time itself: no session; negative beyond it: every session.
    assert store.list_sessions(idle_for=timedelta(days=999_999)) == []
    assert store.prune_sessions(timedelta(days=999_999)) == []
    assert store.prune_sessions(timedelta.max, dry_run=True) == []
    assert len(store.list_sessions(idle_for=timedelta.min)) == 2
    # A moment before year 1 in UTC is before every checkpoint; after 9999, after all.
    early = datetime(1, 1, 1, tzinfo=PLUS_ONE)
    late = datetime(9999, 12, 31, 23, 59, tzinfo=MINUS_ONE)
    assert [cp.id for cp in store.list_checkpoints("ok", since=early)] == ["ok:1"]
    assert [cp.id for cp in store.list_checkpoints("ok", start=early, end=late)] == ["ok:1"]
    assert store.list_checkpoints("ok", end=early) == []
    assert store.list_checkpoints("ok", since=late) == []
    manager = CheckpointManager("ok", store=store)
    assert [cp.id for cp in manager.get_since(early)] == ["ok:1"]
    assert [cp.id for cp in manager.get_between(early, late)] == ["ok:1"]
    # Text that cannot be encoded is a typed error naming it, wherever it goes.
    for call in (
        lambda: store.get("\ud800:1"),
        lambda: store.list_sessions(prefix="\udcff"),
        lambda: store.prune_sessions(timedelta(days=1), prefix="\udcfe", dry_run=True),
    ):
        with pytest.raises(CheckpointValueError, match="surrogate"):
            call()
    with pytest.raises(CheckpointTypeError, match="iterable"):
        store.import_checkpoints("a", None)  # type: ignore[arg-type]
    assert store.session_info("a") is None
    store.close()


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (("\x00",), {}),
        (("postgresql+psycopg://postgres@127.0.0.1:5432/te\udcffst",), {}),
        ((None,), {"durability": ["full"]}),
        ((None,), {"readonly": "yes"}),
        ((None,), {"busy_timeout": float("nan")}),
        ((None,), {"pool_size": 5}),
        ((5,), {}),
    ],
)
def test_hostile_constructor_arguments(tmp_path: Any, args: tuple, options: dict) -> None:
    # Siblings found while hunting: NUL in a path (ValueError), a surrogate in a server
    # URL (UnicodeEncodeError), an unhashable durability (TypeError), a truthy string
    # for readonly (a misleading StoreUnavailableError).
    target = str(tmp_path / "s.db") if args == (None,) else args[0]
    with pytest.raises(BreakpilotStoreError):
        CheckpointStore(target, **options)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_manager_limits_of_none_turn_retention_off(tmp_path: Any) -> None:
    # README (the API): "`None` turns either off". The managers refused None with
    # CheckpointTypeError, so the documented way to keep a whole history did not work.
    with CheckpointStore(tmp_path / "s.db") as store:
        for kw, expected in (
            ({"max_checkpoints": None, "compress_after": 150}, 130),  # no cap of 100
            ({"compress_after": None}, 100),  # no compression; the cap still holds
            ({"max_checkpoints": None, "compress_after": None}, 130),
        ):
            session = "s" + "".join(f"{k}{v}" for k, v in sorted(kw.items()))
            manager = CheckpointManager(session, store=store, **kw)
            for i in range(130):
                manager.create(f"n{i % 5}", {"i": i})
            assert len(manager) == expected, kw
        unbounded = CheckpointManager("long", store=store, max_checkpoints=None)
        assert unbounded.max_checkpoints is None

        async def run() -> int:
            # A store of its own, closed here: an async front left open keeps its
            # writer thread (later tests count those threads).
            async with AsyncCheckpointManager(
                "async", store=tmp_path / "a.db", max_checkpoints=None, compress_after=None
            ) as manager:
                for i in range(120):
                    await manager.create("n", {"i": i})
                return await manager.count()

        assert asyncio.run(run()) == 120


def test_stores_and_managers_refuse_pickling_and_copying(tmp_path) -> None:
    """Found by hand: ``pickle`` (what ``multiprocessing`` does to a spawned child's
    arguments) and ``copy.deepcopy`` failed inside SQLAlchemy with ``AttributeError:
    Can't pickle local object`` and ``TypeError: cannot pickle 'module' object``."""
    import copy
    import multiprocessing
    import pickle
    import sqlite3

    from breakpilot_store import AsyncCheckpointStore

    path = tmp_path / "p.db"
    store = CheckpointStore(path)
    mgr = CheckpointManager("s", store=store)
    mgr.create("kept", {"a": 1})
    handles = [store, mgr, AsyncCheckpointStore(path), AsyncCheckpointManager("s", store=path)]
    for handle in handles:
        name = type(handle).__name__
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match=rf"^a {name} cannot be pickled or copied"):
                attempt(handle)
    child = multiprocessing.get_context("spawn").Process(target=print, args=(store,))
    with pytest.raises(TypeError, match=r"^a CheckpointStore cannot be pickled or copied"):
        child.start()
    assert mgr.create("still", {"a": 2}).id == "s:2"  # nothing broke the originals
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT seq, name FROM checkpoints").fetchall() == [
        (1, "kept"),
        (2, "still"),
    ]
    raw.close()


def test_key_limits_are_bytes_too_and_the_same_on_both_backends(backend_url, raw) -> None:
    """Found by our hostile round 5: 1,024 CJK characters (3,072 bytes) passed the
    length check and PostgreSQL refused them ("index row size exceeds btree maximum",
    a DatabaseError) where SQLite kept them, so such a store could not be copied across."""
    with CheckpointStore(backend_url) as store:
        widest = "中" * 341  # 1,023 bytes: as a session id and a name, one index entry
        assert store.create(widest, widest, {"a": 1}).id == f"{widest}:1"
        before = raw().dump()
        for session_id, name in (("中" * 342, "n"), ("s", "中" * 342), ("😀" * 257, "n")):
            with pytest.raises(CheckpointValueError, match="bytes as UTF-8; the limit is 1024"):
                store.create(session_id, name, {})
        assert raw().dump() == before


def test_round5_core_bounds_and_a_copy_into_a_leased_session(backend_url, raw, tmp_path) -> None:
    """Found by our hostile round 5: ``min_last_seq=2**63-1`` was taken, and every later
    create of the session then failed (an untyped ``OverflowError`` on SQLite); a SQLite
    URL's ``?timeout=abc`` escaped as a bare ``ValueError``; ``copy_session`` and
    ``fork_session`` wrote into a session whose holder's live lease survived a forced
    ``delete_session``, under that holder's next checkpoint."""
    from breakpilot_store import SessionLeasedError

    with CheckpointStore(backend_url) as store:
        store.create("src", "a", {})
        before = raw().dump()
        for bound in (2**63 - 1, 2**63, 2**62 + 1, -1):
            with pytest.raises(CheckpointValueError, match="min_last_seq must be an int from 0"):
                store.import_checkpoints("ov", [], min_last_seq=bound)
        assert raw().dump() == before
        assert store.import_checkpoints("ov", [], min_last_seq=2**62) == 0  # the bound itself
        holder = CheckpointManager("leased", store=store, lease=30.0)
        holder.create("mine", {})
        with CheckpointStore(backend_url) as other:
            other.delete_session("leased", force=True)
            for attempt in (
                lambda: other.copy_session("src", "leased"),
                lambda: other.fork_session("src:1", "leased"),
            ):
                with pytest.raises(SessionLeasedError):
                    attempt()
        holder.close()
    with pytest.raises(CheckpointValueError, match="cannot use the SQLite URL"):
        CheckpointStore(f"sqlite:///{tmp_path / 'x.db'}?timeout=abc")
