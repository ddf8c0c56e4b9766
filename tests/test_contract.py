"""The CheckpointManager contract, run against every backend (one class, many stores).

State is checked through a separate raw driver connection (the ``raw`` fixture), the way
an operator would see it, not only through the store's own reads.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from breakpilot_store import (
    AsyncCheckpointManager,
    AsyncCheckpointStore,
    BreakpilotStoreError,
    Checkpoint,
    CheckpointManager,
    CheckpointStore,
    ImportConflictError,
    ImportFormatError,
    UnknownSessionError,
)
from tests.async_adapter import Blocking, LoopThread
from tests.seed.checkpoint_manager import CheckpointManager as SeedManager


@pytest.fixture(params=["sync", "async"])
def store(request, backend_url):
    """The store under test: the sync API, or the async one driven from a loop thread."""
    if request.param == "sync":
        with CheckpointStore(backend_url) as s:
            yield s
        return
    runner = LoopThread()
    try:
        front = AsyncCheckpointStore(backend_url)
        runner.run(front.open())
        yield Blocking(front, runner)
        runner.run(front.close())
    finally:
        runner.close()


def manager(store, session_id="agent-7", **kw):
    if isinstance(store, Blocking):
        return Blocking(AsyncCheckpointManager(session_id, store=store.target, **kw), store.runner)
    return CheckpointManager(session_id, store=store, **kw)


class TestContract:
    # -- create / read ---------------------------------------------------------------

    def test_ids_are_session_and_seq_and_continue_in_a_new_manager(self, store, backend_url, raw):
        m = manager(store)
        ids = [m.create(f"step{i}", {"i": i}).id for i in range(3)]
        assert ids == ["agent-7:1", "agent-7:2", "agent-7:3"]
        with CheckpointStore(backend_url) as again:
            m2 = manager(again)
            assert m2.get_latest().id == "agent-7:3"
            assert m2.create("next", {}).id == "agent-7:4"
        db = raw()
        assert db.query("SELECT seq, name FROM checkpoints ORDER BY seq") == [
            (1, "step0"),
            (2, "step1"),
            (3, "step2"),
            (4, "next"),
        ]
        assert db.counters() == {"agent-7": (4, 4)}
        assert db.query("SELECT session_id, checkpoints, last_seq FROM session_overview") == [
            ("agent-7", 4, 4)
        ]

    def test_session_ids_may_contain_colons(self, store):
        m = manager(store, "team:a:agent:1")
        cp = m.create("x", {"v": 1})
        assert cp.id == "team:a:agent:1:1"
        assert m.get(cp.id) == cp
        assert store.get(cp.id) == cp
        assert cp.session_id == "team:a:agent:1" and cp.seq == 1

    def test_get_returns_only_this_sessions_checkpoints(self, store):
        a, b = manager(store, "a"), manager(store, "b")
        cb = b.create("x", {})
        assert a.get(cb.id) is None
        assert a.get("a:1") is None
        assert a.get("garbage") is None
        assert a.get("a:01") is None
        assert b.get(cb.id) == cb
        with pytest.raises(TypeError):
            a.get(1)

    def test_round_trip_is_exact(self, store):
        m = manager(store)
        data = {
            "text": "héllo \u2603 \x00 nul",
            "int": 2**63 + 5,
            "neg": -1,
            "float": 0.1,
            "negzero": -0.0,
            "big": 1e308,
            "bool": True,
            "none": None,
            "nested": [[{"a": []}], {}],
            "": "empty key",
        }
        meta = {"model": "x", "tokens": 12}
        cp = m.create("n", data, meta)
        got = m.get(cp.id)
        assert got.data == data and got.metadata == meta
        assert math.copysign(1.0, got.data["negzero"]) == -1.0
        assert type(got.data["int"]) is int and type(got.data["float"]) is float
        assert got.timestamp == cp.timestamp
        assert got.timestamp.tzinfo is not None and got.timestamp.utcoffset() == timedelta(0)

    def test_create_stores_a_snapshot(self, store, raw):
        m = manager(store)
        data = {"messages": [{"role": "user"}]}
        cp = m.create("s", data)
        data["messages"].append({"role": "evil"})
        data["new"] = 1
        assert m.get(cp.id).data == {"messages": [{"role": "user"}]}
        assert cp.data == {"messages": [{"role": "user"}]}
        stored = raw().scalar("SELECT CAST(data AS TEXT) FROM checkpoints")
        assert json.loads(stored) == {"messages": [{"role": "user"}]}

    def test_metadata_defaults_to_empty_dict(self, store):
        cp = manager(store).create("n", {"a": 1})
        assert cp.metadata == {}
        assert manager(store).get(cp.id).metadata == {}

    def test_orderings(self, store):
        m = manager(store, compress_after=1000, max_checkpoints=1000)
        for i, name in enumerate("abacab"):
            m.create(name, {"i": i})
        assert [c.id for c in m.get_all()] == [f"agent-7:{i}" for i in range(1, 7)]
        assert [c.data["i"] for c in m.get_by_name("a")] == [4, 2, 0]
        assert m.get_by_name("zzz") == []
        assert m.get_latest().data == {"i": 5}
        assert m.get_latest("a").data == {"i": 4}
        assert m.get_latest("").data == {"i": 5}  # the seed treats "" as no filter
        assert m.get_latest("nope") is None
        assert [c.id for c in m] == [c.id for c in m.get_all()]
        assert len(m) == 6

    def test_empty_session(self, store):
        m = manager(store)
        assert m.get_latest() is None and m.get_all() == [] and len(m) == 0
        assert m.get_summary() == {
            "total_count": 0,
            "unique_names": 0,
            "names": {},
            "first_checkpoint": None,
            "last_checkpoint": None,
            "duration_seconds": 0,
        }
        assert m.export() == "[]"
        assert m.clear() == 0

    def test_get_since_is_strict_and_get_between_inclusive(self, store):
        m = manager(store)
        cps = [m.create(f"n{i}", {"i": i}) for i in range(4)]
        t = [c.timestamp for c in cps]
        assert [c.id for c in m.get_since(t[1])] == [c.id for c in cps if c.timestamp > t[1]]
        assert cps[1].id not in [c.id for c in m.get_since(t[1])]
        between = [c.id for c in m.get_between(t[1], t[2])]
        assert between == [c.id for c in cps if t[1] <= c.timestamp <= t[2]]
        assert cps[1].id in between and cps[2].id in between
        # Any zone is accepted: the same instant written in UTC+05:30.
        zone = timezone(timedelta(hours=5, minutes=30))
        assert [c.id for c in m.get_since(t[1].astimezone(zone))] == [
            c.id for c in m.get_since(t[1])
        ]
        assert m.get_since(datetime(1970, 1, 1, tzinfo=timezone.utc))[0].id == cps[0].id

    def test_time_filters_hold_when_time_and_seq_disagree(self, store, raw):
        # No time index: filters read the session in seq order. Imported entries carry
        # their own (older) times at higher seqs; results are still exact, in seq order.
        m = manager(store)
        made = [m.create("made", {"i": i}) for i in range(3)]
        old = datetime(2020, 1, 1, tzinfo=timezone.utc)
        doc = [
            {
                "id": f"else:{i}",
                "name": "old",
                "timestamp": (old + timedelta(days=i - 1)).isoformat(),
                "data": {"j": i},
            }
            for i in (1, 2)
        ]
        assert m.import_checkpoints(json.dumps(doc)) == 2
        everything = m.get_all()
        assert [c.seq for c in everything] == [1, 2, 3, 4, 5]
        assert [c.seq for c in m.get_since(old)] == [1, 2, 3, 5]
        assert [c.seq for c in m.get_between(old, old + timedelta(days=1))] == [4, 5]
        assert [c.seq for c in m.get_between(old, old)] == [4]
        assert [c.seq for c in m.get_since(made[0].timestamp)] == [2, 3]
        # First and last by seq, as get_summary picks them (the last is an old import).
        info = store.session_info("agent-7")
        summary = m.get_summary()
        assert info.first_checkpoint_at == made[0].timestamp
        assert info.last_checkpoint_at == everything[-1].timestamp == old + timedelta(days=1)
        assert summary["last_checkpoint"]["id"] == everything[-1].id
        view = raw().query("SELECT first_checkpoint_at, last_checkpoint_at FROM session_overview")
        expected = (made[0].timestamp, everything[-1].timestamp)
        if raw().kind == "sqlite":
            view = [tuple(datetime.fromisoformat(v) for v in row) for row in view]
        assert view == [expected]

    def test_naive_datetimes_are_refused(self, store):
        m = manager(store)
        with pytest.raises(TypeError, match="timezone-aware"):
            m.get_since(datetime.now())
        with pytest.raises(TypeError, match="timezone-aware"):
            m.get_between(datetime.now(timezone.utc), datetime.now())
        with pytest.raises(TypeError):
            m.get_since("2020-01-01")

    def test_rollback_to(self, store):
        m = manager(store)
        cp = m.create("n", {"state": [1, 2]})
        assert m.rollback_to(cp.id) == {"state": [1, 2]}
        assert m.rollback_to("agent-7:99") is None

    def test_clear_keeps_numbering(self, store, raw):
        m = manager(store)
        for i in range(3):
            m.create("n", {"i": i})
        assert m.clear() == 3
        assert len(m) == 0 and m.get_latest() is None
        assert m.create("n", {}).id == "agent-7:4"
        db = raw()
        assert db.query("SELECT seq FROM checkpoints") == [(4,)]
        assert db.counters() == {"agent-7": (4, 1)}
        assert db.query("SELECT last_seq, checkpoints FROM session_overview") == [(4, 1)]

    def test_summary_has_the_seed_keys(self, store):
        m = manager(store)
        first = m.create("b", {})
        m.create("a", {})
        last = m.create("b", {})
        s = m.get_summary()
        assert s["total_count"] == 3 and s["unique_names"] == 2
        assert list(s["names"].items()) == [("b", 2), ("a", 1)]
        assert s["first_checkpoint"] == first.to_dict()
        assert s["last_checkpoint"] == last.to_dict()
        assert s["duration_seconds"] == (last.timestamp - first.timestamp).total_seconds()

    def test_two_managers_on_one_session_share_it(self, store):
        a, b = manager(store), manager(store)
        a.create("x", {})
        b.create("y", {})
        assert [c.id for c in a.get_all()] == ["agent-7:1", "agent-7:2"]
        assert b.get_latest("x").id == "agent-7:1"

    # -- callbacks ----------------------------------------------------------------

    def test_callback_runs_after_commit_and_errors_propagate(self, store, raw):
        m = manager(store)
        seen = []

        def callback(cp: Checkpoint) -> None:
            # After the commit: a separate connection already sees the row.
            seen.append(raw().scalar("SELECT count(*) FROM checkpoints"))
            raise RuntimeError("callback failed")

        m.on_checkpoint(callback)
        with pytest.raises(RuntimeError, match="callback failed"):
            m.create("x", {"a": 1})
        assert seen == [1]
        assert m.get_latest().data == {"a": 1}

    # -- validation -------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("data", "error", "fragment"),
        [
            ({"at": datetime.now(timezone.utc)}, TypeError, "data['at']"),
            ({"m": [0, 1, 2, {"at": {1, 2}}]}, TypeError, "data['m'][3]['at']"),
            ({"t": (1, 2)}, TypeError, "tuple"),
            ({"b": b"x"}, TypeError, "bytes"),
            ({1: "int key"}, TypeError, "key 1"),
            ({"x": float("nan")}, ValueError, "data['x']"),
            ({"x": [float("inf")]}, ValueError, "data['x'][0]"),
            ({"x": object()}, TypeError, "object"),
            ({"s": "\ud800"}, ValueError, "surrogate"),
            ({"n": [2**64]}, ValueError, "data['n'][0]: integer"),
            ({"n": -(2**63) - 1}, ValueError, "64-bit"),
            ([1, 2], TypeError, "data must be a dict"),
            (None, TypeError, "data must be a dict"),
        ],
    )
    def test_bad_data_is_refused_and_nothing_written(self, store, raw, data, error, fragment):
        m = manager(store)
        m.create("ok", {"v": 1})
        before = raw().dump()
        with pytest.raises(error) as info:
            m.create("bad", data)
        assert isinstance(info.value, BreakpilotStoreError)
        assert fragment in str(info.value)
        assert raw().dump() == before

    def test_bad_metadata_is_refused(self, store, raw):
        m = manager(store)
        with pytest.raises(TypeError, match="metadata"):
            m.create("n", {}, ["not", "a", "dict"])
        with pytest.raises(ValueError, match=r"metadata\['score'\]"):
            m.create("n", {}, {"score": float("-inf")})
        assert raw().query("SELECT count(*) FROM checkpoints") == [(0,)]

    @pytest.mark.parametrize("bad", ["", "a\x00b"])
    def test_bad_names_and_session_ids(self, store, bad):
        with pytest.raises(ValueError):
            manager(store).create(bad, {})
        with pytest.raises(ValueError):
            manager(store, bad)
        with pytest.raises(TypeError):
            manager(store).create(None, {})  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "kw",
        [
            {"max_checkpoints": 0},
            {"compress_after": -1},
            {"compress_after": 2.5},
            {"max_checkpoints": True},
        ],
    )
    def test_limits_must_be_positive_ints(self, store, kw):
        with pytest.raises((ValueError, TypeError)) as info:
            manager(store, "s", **kw)
        assert next(iter(kw)) in str(info.value)

    # -- retention ----------------------------------------------------------------

    def test_compression_keeps_first_recent_and_latest_of_each_name(self, store, raw):
        m = manager(store, compress_after=30, max_checkpoints=1000)
        names = ["plan", "act", "observe"]
        for i in range(31):
            m.create(names[i % 3] if i else "start", {"i": i})
        # 31 > 30: seqs 1..31; first=1, recent = 12..31, middle = 2..11.
        kept = [c.seq for c in m.get_all()]
        middle_latest = {max(s for s in range(2, 12) if names[(s - 1) % 3] == n) for n in names}
        assert kept == sorted({1, *range(12, 32), *middle_latest})
        db = raw()
        assert db.counters() == {"agent-7": (31, len(kept))}
        assert db.scalar("SELECT count(*) FROM checkpoints") == len(kept)

    def test_small_compress_after_never_duplicates_the_first(self, store):
        m = manager(store, compress_after=3, max_checkpoints=1000)
        for i in range(10):
            m.create("same", {"i": i})
        ids = [c.id for c in m.get_all()]
        assert len(ids) == len(set(ids))
        assert ids == [f"agent-7:{i}" for i in range(1, 11)]  # <= 21 rows: all kept

    def test_max_checkpoints_is_a_hard_cap(self, store, raw):
        m = manager(store, compress_after=1000, max_checkpoints=3)
        for i in range(7):
            m.create(f"n{i}", {"i": i})
        # Oldest go first, the first checkpoint last of those, the newest never.
        assert [c.seq for c in m.get_all()] == [1, 6, 7]
        m1 = manager(store, "solo", compress_after=1000, max_checkpoints=1)
        for _ in range(3):
            m1.create("x", {})
        assert [c.id for c in m1.get_all()] == ["solo:3"]
        assert raw().counters()["solo"] == (3, 1)

    def test_ids_never_reused_after_compression(self, store):
        m = manager(store, compress_after=5, max_checkpoints=6)
        seen = [m.create("n", {}).id for _ in range(40)]
        assert len(set(seen)) == 40
        assert m.create("n", {}).id == "agent-7:41"

    # -- export / import -----------------------------------------------------------

    def test_export_is_the_seed_format(self, store):
        m = manager(store)
        cps = [
            m.create("a", {"x": [1, {"y": "é"}], "f": 1.5e-7, "e": [], "o": {}}, {"m": 1}),
            m.create("b", {}),
        ]
        exported = m.export()
        seed_bytes = json.dumps([c.to_dict() for c in cps], indent=2)
        assert json.loads(exported) == json.loads(seed_bytes) == [c.to_dict() for c in cps]
        # The same layout line for line: only scalars may be spelled differently
        # (UTF-8 instead of \u escapes, 1.5e-7 instead of 1.5e-07).
        ours, theirs = exported.splitlines(), seed_bytes.splitlines()
        assert len(ours) == len(theirs)
        for mine, seed in zip(ours, theirs, strict=True):
            assert mine.split(":")[0] == seed.split(":")[0]
        ascii_only = manager(store, "ascii")
        plain = [ascii_only.create("a", {"x": [1, {"y": "z"}], "n": None}, {"m": True})]
        assert ascii_only.export() == json.dumps([c.to_dict() for c in plain], indent=2)

    def test_seed_reads_our_export_and_we_read_the_seeds(self, store):
        ours = manager(store, "shared-id")
        ours.create("a", {"x": 1})
        seed = SeedManager("shared-id")
        assert seed.import_checkpoints(ours.export()) == 1
        assert seed.get("shared-id:1").data == {"x": 1}

        seed2 = SeedManager("elsewhere")
        seed2.create("s1", {"k": "v"}, {"meta": True})
        seed2.create("s2", {"k": "w"})
        target = manager(store, "target")
        assert target.import_checkpoints(seed2.export()) == 2
        got = target.get_all()
        assert [c.id for c in got] == ["target:1", "target:2"]
        assert [c.data for c in got] == [{"k": "v"}, {"k": "w"}]
        assert got[0].metadata == {"meta": True}
        assert got[0].timestamp == seed2.get("elsewhere:1").timestamp

    def test_reimporting_own_export_is_a_no_op(self, store, raw):
        m = manager(store)
        for i in range(3):
            m.create("n", {"i": i})
        exported = m.export()
        before, counters = raw().dump(), raw().counters()
        assert m.import_checkpoints(exported) == 0
        after = raw().dump()
        # Only the session's row may be rewritten (the creates folded into its base, the
        # time of the write); its counter and every checkpoint stay as they were.
        assert [r for r in after if len(r) != 5] == [r for r in before if len(r) != 5]
        assert raw().counters() == counters == {"agent-7": (3, 3)}

    def test_own_entries_keep_their_seq_and_restore_deleted_ones(self, store, raw):
        m = manager(store)
        for i in range(3):
            m.create("n", {"i": i})
        exported = m.export()
        m.clear()
        assert m.import_checkpoints(exported) == 3
        assert [c.id for c in m.get_all()] == ["agent-7:1", "agent-7:2", "agent-7:3"]
        assert m.create("n", {}).id == "agent-7:4"
        assert raw().counters() == {"agent-7": (4, 4)}

    def test_conflicting_own_entry_raises_and_writes_nothing(self, store, raw):
        m = manager(store)
        m.create("n", {"i": 1})
        doc = json.loads(m.export())
        doc[0]["data"] = {"i": 2}
        before = raw().dump()
        with pytest.raises(ImportConflictError, match="agent-7:1"):
            m.import_checkpoints(json.dumps(doc))
        assert raw().dump() == before

    def test_foreign_entries_get_fresh_seqs_and_keep_origin(self, store, raw):
        src = manager(store, "src")
        for i in range(2):
            src.create("n", {"i": i})
        dst = manager(store, "dst")
        dst.create("own", {})
        doc = src.export()
        assert dst.import_checkpoints(doc) == 2
        assert [c.id for c in dst.get_all()] == ["dst:1", "dst:2", "dst:3"]
        assert raw().query(
            "SELECT seq, origin_id FROM checkpoints WHERE session_id = ? ORDER BY seq", ("dst",)
        ) == [(1, None), (2, "src:1"), (3, "src:2")]
        assert dst.import_checkpoints(doc) == 0  # identical again: no-op
        changed = json.loads(doc)
        changed[1]["name"] = "renamed"
        with pytest.raises(ImportConflictError, match="src:2"):
            dst.import_checkpoints(json.dumps(changed))
        assert dst.create("n", {}).id == "dst:4"

    @pytest.mark.parametrize("same", [True, False])
    def test_a_backup_of_an_imported_row_is_known_by_its_origin(self, store, raw, same):
        # Found by a differential campaign: a backup entry ("agent-7:1", origin "other:1")
        # restored after "other:1" was imported again as agent-7:2 hit the unique origin
        # index and raised an untyped DatabaseError.
        m = manager(store)
        entry = {"id": "other:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00"}
        assert m.import_checkpoints(json.dumps([dict(entry, data={"v": 1})])) == 1
        backup = m.export()
        assert m.clear() == 1
        again = {"v": 1} if same else {"v": 2}
        assert m.import_checkpoints(json.dumps([dict(entry, data=again)])) == 1
        before = raw().dump()
        if same:
            assert m.import_checkpoints(backup) == 0  # the same checkpoint, held once
        else:
            with pytest.raises(ImportConflictError, match="'agent-7:1'.*as 'agent-7:2'"):
                m.import_checkpoints(backup)
        assert raw().dump() == before
        # In one document, the backup entry and its origin: one row.
        fresh = manager(store, "fresh")
        both = [json.loads(backup)[0], dict(entry, data={"v": 1}, metadata={})]
        both[0]["id"] = "fresh:1"
        assert fresh.import_checkpoints(json.dumps(both)) == 1
        assert raw().query(
            "SELECT seq, origin_id FROM checkpoints WHERE session_id = ?", ("fresh",)
        ) == [(1, "other:1")]

    def test_foreign_seqs_go_above_every_own_seq_in_the_document(self, store):
        m = manager(store)
        doc = [
            {"id": "agent-7:1", "name": "a", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}},
            {"id": "other:9", "name": "f", "timestamp": "2026-01-01T00:00:01+00:00", "data": {}},
            {"id": "agent-7:5", "name": "b", "timestamp": "2026-01-01T00:00:02+00:00", "data": {}},
        ]
        assert m.import_checkpoints(json.dumps(doc)) == 3
        assert [c.id for c in m.get_all()] == ["agent-7:1", "agent-7:5", "agent-7:6"]
        assert m.get("agent-7:6").name == "f"
        assert m.create("n", {}).id == "agent-7:7"

    def test_a_streamed_document_gets_the_same_seqs_as_a_list(self, store):
        doc = [
            {"id": "other:9", "name": "f", "timestamp": "2026-01-01T00:00:01+00:00", "data": {}},
            {"id": "a:3", "name": "b", "timestamp": "2026-01-01T00:00:02+00:00", "data": {}},
            {"id": "other:10", "name": "g", "timestamp": "2026-01-01T00:00:03+00:00", "data": {}},
        ]
        for session, entries in (
            ("a", doc),
            ("s", [dict(e, id=e["id"].replace("a:", "s:")) for e in doc]),
        ):
            as_list = store.import_checkpoints(session, entries)
            assert as_list == 3
        streamed = store.import_checkpoints(
            "b", (dict(e, id=e["id"].replace("a:", "b:")) for e in doc)
        )
        assert streamed == 3
        for session in ("a", "b"):
            got = [(c.seq, c.name) for c in store.list_checkpoints(session)]
            assert got == [(3, "b"), (4, "f"), (5, "g")]
            assert store.create(session, "next", {}).seq == 6

    def test_import_applies_no_compression_but_next_create_does(self, store):
        src = manager(store, "src", compress_after=1000, max_checkpoints=1000)
        for i in range(30):
            src.create(f"n{i % 2}", {"i": i})
        dst = manager(store, "dst", compress_after=10, max_checkpoints=1000)
        assert dst.import_checkpoints(src.export()) == 30
        assert len(dst) == 30
        dst.create("n", {})
        assert len(dst) < 31

    @pytest.mark.parametrize(
        ("doc", "fragment"),
        [
            ("not json", "not valid JSON"),
            ('{"id": 1}', "JSON array"),
            ("[1]", "entry 0"),
            ('[{"id": "x:1", "name": "n", "data": {}}]', "timestamp"),
            (
                '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00", "data": {}}]',
                "time zone",
            ),
            (
                '[{"id": "x", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}]',
                "session:seq",
            ),
            (
                '[{"id": "x:1", "name": "", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}]',
                "name",
            ),
            (
                '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00",'
                ' "data": []}]',
                "data must be a dict",
            ),
            (
                '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00",'
                ' "data": {"v": NaN}}]',
                "data['v']",
            ),
            ('[{"id": "x:1", "name": "n", "timestamp": "yesterday", "data": {}}]', "ISO-8601"),
        ],
    )
    def test_malformed_import_raises_and_writes_nothing(self, store, raw, doc, fragment):
        m = manager(store)
        m.create("n", {})
        good = {"id": "y:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}}
        before = raw().dump()
        with pytest.raises(ImportFormatError) as info:
            m.import_checkpoints(doc)
        assert fragment in str(info.value)
        assert isinstance(info.value, ValueError)
        # A bad entry after good ones: still all or nothing.
        if doc.startswith("[{"):
            with pytest.raises(ImportFormatError):
                m.import_checkpoints(json.dumps([good, *json.loads(doc)]))
        assert raw().dump() == before

    def test_import_with_duplicate_ids_in_one_document(self, store):
        m = manager(store)
        entry = {
            "id": "o:1",
            "name": "n",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"a": 1},
        }
        assert m.import_checkpoints(json.dumps([entry, entry])) == 1
        other = dict(entry, data={"a": 2})
        with pytest.raises(ImportConflictError):
            manager(store, "fresh").import_checkpoints(json.dumps([entry, other]))
        assert len(manager(store, "fresh")) == 0

    # -- supervisor API -----------------------------------------------------------------

    def test_list_and_delete_sessions(self, store, raw):
        manager(store, "b").create("x", {})
        a = manager(store, "a")
        a.create("first", {})
        a.create("last", {})
        infos = store.list_sessions()
        assert [(i.session_id, i.checkpoints, i.last_seq, i.last_name) for i in infos] == [
            ("a", 2, 2, "last"),
            ("b", 1, 1, "x"),
        ]
        assert infos[0].last_checkpoint_at >= infos[0].first_checkpoint_at
        assert [i.session_id for i in store.list_sessions(prefix="a")] == ["a"]
        assert [i.session_id for i in store.list_sessions(prefix="%")] == []
        assert store.list_sessions(idle_for=timedelta(hours=1)) == []
        assert store.delete_session("a") == 2
        assert raw().query("SELECT session_id FROM sessions") == [("b",)]
        assert raw().query("SELECT DISTINCT session_id FROM checkpoints") == [("b",)]
        with pytest.raises(UnknownSessionError, match="'a'"):
            store.delete_session("a")
        assert manager(store, "a").create("again", {}).id == "a:1"

    def test_operator_sees_plain_text(self, store, raw, backend_url):
        m = manager(store)
        cp = m.create("task_started", {"step": 3, "messages": [{"role": "user"}]})
        db = raw()
        if db.kind == "sqlite":
            row = db.query(
                "SELECT session_id, seq, name, created_at, data ->> '$.step', "
                "json_extract(data, '$.messages[0].role') FROM checkpoints"
            )[0]
            assert row[:3] == ("agent-7", 1, "task_started")
            assert row[3] == cp.timestamp.isoformat(timespec="microseconds")
            assert len(row[3]) == 32
            assert row[4:] == (3, "user")
        else:
            assert db.query("SELECT name FROM checkpoints") == [("task_started",)]
        assert db.query("SELECT id, session_id, seq, name FROM checkpoint_overview") == [
            ("agent-7:1", "agent-7", 1, "task_started")
        ]
        assert db.query(
            "SELECT session_id, checkpoints, last_seq, last_name FROM session_overview"
        ) == [("agent-7", 1, 1, "task_started")]


class TestSupervisorWrites:
    """Compress and prune decide and delete under the session's lock."""

    def test_compress_dry_run_changes_nothing_and_reports(self, store, raw):
        m = manager(store, compress_after=1000, max_checkpoints=1000)
        for i in range(30):
            m.create("same", {"i": i})
        before = raw().dump()
        would = store.compress("agent-7", compress_after=25, dry_run=True)
        # first = 1, recent = 11..30, and 10 is the latest "same" among the rest.
        assert would == [f"agent-7:{i}" for i in range(2, 10)]
        assert raw().dump() == before
        assert store.compress("agent-7", compress_after=25) == would
        assert [c.seq for c in m.get_all()] == [1, *range(10, 31)]
        assert raw().counters() == {"agent-7": (30, 22)}
        assert store.compress("nobody") == []
        assert raw().query("SELECT count(*) FROM sessions") == [(1,)]

    def test_prune_skips_a_session_written_after_the_cutoff(self, store, raw):
        manager(store, "old").create("x", {})
        manager(store, "busy").create("x", {})
        db = raw()
        # Age both sessions, then let "busy" write again: only "old" is idle.
        db.age("2000-01-01T00:00:00.000000+00:00")
        manager(store, "busy").create("y", {})
        assert store.prune_sessions(timedelta(days=1)) == [("old", 1)]
        assert raw().query("SELECT session_id FROM sessions") == [("busy",)]


def test_create_logs_at_debug_level_as_the_seed_does(db_path, caplog):
    with CheckpointStore(db_path) as store:
        m = manager(store, "logged")
        m.create("quiet", {})  # logging at WARNING: nothing recorded
        assert not [r for r in caplog.records if "Created checkpoint" in r.getMessage()]
        with caplog.at_level("DEBUG", logger="breakpilot_store.manager"):
            m.create("step", {"x": 1})
    (record,) = [r for r in caplog.records if "Created checkpoint" in r.getMessage()]
    assert record.getMessage() == "Session logged: Created checkpoint 'step' (#2)"
