"""Bad input: every call either round-trips exactly or fails typed, writing nothing.

State is checked through a separate raw ``sqlite3`` connection, as an operator sees it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.errors import BreakpilotStoreError, ImportFormatError
from tests.strict import same

from .conftest import dump, integrity

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE = [
    "'",
    '"',
    "';--",
    "x'); DROP TABLE checkpoints; --",
    "Robert'); DELETE FROM sessions WHERE ('1'='1",
    "%",
    "_",
    "a%b_c\\",
    "::",
    ":1",
    "s:1",
    "ünï©ødé ✓ 🚀",
    "\u202e\u200b",
    "a\x00b",
    "\ud800",
    "x" * 1024,
    "x" * 1025,
    "x" * 100_000,
    "",
    " ",
]
keys = st.one_of(
    st.sampled_from(HOSTILE), st.text(max_size=40), st.text(":'\";%_\\\x00", max_size=12)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and Infinity included
    st.text(),
    st.sampled_from(HOSTILE),
    st.sampled_from([b"bytes", (1, 2), {1, 2}, datetime(2020, 1, 1), object()]),
    st.integers(4300, 6000).map(lambda digits: 10**digits),  # unprintable by str()
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.floats()), inner, max_size=2),
    ),
    max_leaves=20,
)


def nested(depth: int) -> dict:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


objects = st.one_of(
    st.dictionaries(keys, values, max_size=5),
    st.integers(0, 700).map(nested),
    values,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[CheckpointStore, Path]:
    path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    store = CheckpointStore(path)
    store.create("seed", "seed", {"x": 1})
    yield store, path
    store.close()
    assert integrity(path) == "ok"


def _typed_and_unchanged(exc: BaseException, before: Any, path: Path) -> None:
    assert isinstance(exc, BreakpilotStoreError), f"untyped {type(exc).__name__}: {exc}"
    assert str(exc)
    assert dump(path) == before


@SETTINGS
@given(session=keys, name=keys, data=objects, metadata=st.one_of(st.none(), objects))
def test_create_round_trips_or_fails_typed(shared, session, name, data, metadata) -> None:
    store, path = shared
    before = dump(path)
    try:
        cp = store.create(session, name, data, metadata)
    except Exception as exc:
        _typed_and_unchanged(exc, before, path)
        return
    got = store.get(cp.id)
    assert got is not None and got.id == f"{session}:{cp.seq}" and got.name == name
    assert same(got.data, data) and same(got.metadata, metadata or {})
    assert got.session_id == session
    sessions, rows = dump(path)
    assert len(rows) == len(before[1]) + 1
    row = next(r for r in rows if r[0] == session and r[1] == cp.seq)
    assert same(json.loads(row[4]), data)  # what an operator reads is the same value
    # Export -> import into another session round-trips exactly.
    other = f"copy-{cp.seq}-{len(rows)}"
    assert store.import_checkpoints(other, [got.to_dict()]) == 1
    copied = store.get_latest(other)
    assert same(copied.data, data) and copied.timestamp == got.timestamp


def _entry(**fields: Any) -> dict:
    entry = {
        "id": "src:1",
        "name": "n",
        "timestamp": "2026-01-02T03:04:05.123456+00:00",
        "data": {"k": 1},
        "metadata": {},
    }
    entry.update(fields)
    return entry


timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # naive
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "yesterday",
            "",
            "2026-13-01T00:00:00+00:00",
        ]
    ),
    st.integers(),
    st.none(),
)
ids = st.one_of(
    st.sampled_from(
        [
            "dst:1",
            "dst:2",
            "src:1",
            "src:0",
            "src:-1",
            "src:007",
            "src:1.5",
            "src",
            ":1",
            "a:b:3",
            "src:9223372036854775807",
            "src:4611686018427387905",
            "src:99999999999999999999999",
            "src:" + "9" * 5000,
        ]
    ),
    st.builds(lambda s, n: f"{s}:{n}", keys, st.integers(-5, 2**64)),
    st.integers(),
    st.none(),
)
entries = st.one_of(
    st.builds(_entry, id=ids, name=keys, timestamp=timestamps, data=objects, metadata=objects),
    st.builds(lambda e, k: {x: y for x, y in e.items() if x != k}, st.builds(_entry), keys),
    st.sampled_from([[], "entry", 1, None]),
)


@SETTINGS
@given(document=st.lists(entries, max_size=5), as_text=st.booleans(), dup=st.booleans())
def test_import_applies_fully_or_not_at_all(shared, document, as_text, dup) -> None:
    store, path = shared
    if dup and document:
        document = [*document, document[0]]  # duplicate ids within one document
    text = None
    if as_text:
        try:  # the document as a file would hold it (huge ints cannot be written)
            text = json.dumps(document, default=repr)
        except ValueError:
            text = None
    before = dump(path)
    try:
        if text is not None:
            with CheckpointManager("dst", store=store) as manager:
                written = manager.import_checkpoints(text)
        else:
            written = store.import_checkpoints("dst", document)
    except Exception as exc:
        _typed_and_unchanged(exc, before, path)
        return
    after = dump(path)
    assert len(after[1]) == len(before[1]) + written
    for entry in document:
        parts = entry["id"].rpartition(":")
        if parts[0] == "dst":
            got = store.get(entry["id"])
        else:
            rows = [r for r in after[1] if r[0] == "dst" and r[6] == entry["id"]]
            assert len(rows) == 1
            got = store.get(f"dst:{rows[0][1]}")
        assert got.name == entry["name"]
        assert same(got.data, json.loads(json.dumps(entry["data"])))
        assert got.timestamp == datetime.fromisoformat(entry["timestamp"])
    seqs = sorted(r[1] for r in after[1] if r[0] == "dst")
    assert len(seqs) == len(set(seqs)) and all(s >= 1 for s in seqs)
    if seqs:  # the counter is at or above every seq held: new ids never collide
        last = next(r for r in after[0] if r[0] == "dst")
        assert last[1] >= max(seqs)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "{}",
        "[1, 2]",
        '[{"id": "x:1"}]',
        "[" * 100_000,
        '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00", "data": {}}]',
        '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": NaN}]',
        '[{"id": "x:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": []}]',
        b"\xff\xfe",
        None,
    ],
)
def test_malformed_import_documents(shared, document) -> None:
    store, path = shared
    before = dump(path)
    with pytest.raises(ImportFormatError) as info:
        CheckpointManager("dst", store=store).import_checkpoints(document)
    _typed_and_unchanged(info.value, before, path)


def test_ten_megabyte_payloads(shared) -> None:
    store, path = shared
    big = {"blob": "\x00é" * 5_000_000, "list": list(range(100_000))}
    cp = store.create("big", "10MB", big)
    assert same(store.get(cp.id).data, big)
    bad = {"blob": "b" * 10_000_000, "tail": [float("nan")]}
    before = dump(path)
    with pytest.raises(BreakpilotStoreError) as info:
        store.create("big", "bad", bad)
    assert "data['tail'][0]" in str(info.value)
    _typed_and_unchanged(info.value, before, path)


def test_other_arguments_fail_typed(shared) -> None:
    store, path = shared
    before = dump(path)
    calls = [
        lambda: store.get(7),
        lambda: store.get_latest("seed", 7),
        lambda: store.list_checkpoints("seed", limit=0),
        lambda: store.list_checkpoints("seed", limit="1"),
        lambda: store.list_checkpoints("seed", since=datetime(2020, 1, 1)),
        lambda: store.list_sessions(prefix=5),
        lambda: store.list_sessions(idle_for=5),
        lambda: store.create("s", "n", {}, compress_after=0),
        lambda: store.create("s", "n", {}, max_checkpoints=True),
        lambda: store.compress("seed", compress_after="1"),
        lambda: CheckpointStore(path, busy_timeout="soon"),
        lambda: CheckpointStore(path, durability="sometimes"),
        lambda: CheckpointManager("s", store=store).get_since("yesterday"),
    ]
    for call in calls:
        with pytest.raises(BreakpilotStoreError):
            call()
    assert store.get("seed:99999999999999999999999") is None
    assert store.get("seed:" + "9" * 5000) is None
    assert dump(path) == before


# -- nothing a caller passes reaches SQL as text ----------------------------------------

MARK = "ZQXJ"  # in every hostile string below; must never appear in a statement's SQL
INJECT = [
    f"{MARK}'); DROP TABLE checkpoints; --",
    f'{MARK}" OR 1=1 --',
    f"{MARK}%_\\",
    f"{MARK}:5",
    f"{MARK}\u202e☃",
]


class _Cursor(sqlite3.Cursor):
    def execute(self, sql, *args):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().execute(sql, *args)

    def executemany(self, sql, *args):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().executemany(sql, *args)

    def executescript(self, sql):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().executescript(sql)


class _Connection(sqlite3.Connection):
    def cursor(self, factory=_Cursor):  # noqa: ANN001, ANN201
        return super().cursor(factory)

    def execute(self, sql, *args):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().execute(sql, *args)

    def executemany(self, sql, *args):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().executemany(sql, *args)

    def executescript(self, sql):  # noqa: ANN001, ANN201
        _SEEN.append(sql)
        return super().executescript(sql)


_SEEN: list[str] = []


def test_no_caller_value_reaches_sql_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = sqlite3.connect

    def recording_connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return real_connect(*args, **{**kwargs, "factory": _Connection})

    # SQLAlchemy's pysqlite dialect calls sqlite3.dbapi2.connect.
    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", recording_connect)
    _SEEN.clear()
    path = tmp_path / "text.db"
    store = CheckpointStore(path)
    now = datetime.now(timezone.utc)
    for i, hostile in enumerate(INJECT):
        manager = CheckpointManager(hostile, store=store, compress_after=2, max_checkpoints=3)
        data = {hostile: [hostile, {"n": i}], "k": hostile}
        for _ in range(4):  # past compress_after and the cap: retention runs too
            cp = manager.create(hostile, data, {hostile: hostile})
        assert cp.session_id == hostile and cp.name == hostile
        assert manager.get(cp.id).data == data
        assert manager.get(f"{hostile}:999") is None
        assert manager.get_latest(hostile).id == cp.id
        assert [c.id for c in manager.get_by_name(hostile)][0] == cp.id
        assert manager.get_since(now - timedelta(days=1))
        assert manager.get_between(now - timedelta(days=1), now + timedelta(days=1))
        assert manager.get_summary()["names"] == {hostile: 3}
        exported = manager.export()
        other = CheckpointManager(hostile + "-copy", store=store)
        assert other.import_checkpoints(exported) == 3
        assert other.import_checkpoints(exported) == 0
        assert store.list_sessions(prefix=hostile)[0].session_id == hostile
        assert store.session_info(hostile).checkpoints == 3
        assert store.compress(hostile, compress_after=1, max_checkpoints=2, dry_run=True)
        store.compress(hostile, compress_after=1, max_checkpoints=2)
        assert store.count(hostile) == 2
        list(store.iter_checkpoints(hostile))
        manager.clear()
        store.delete_session(hostile + "-copy")
    # LIKE wildcards in a prefix are literal: "ZQXJ%_\\" matches only itself.
    assert [s.session_id for s in store.list_sessions(prefix=f"{MARK}%")] == [f"{MARK}%_\\"]
    store.close()
    assert _SEEN, "the recording driver saw no SQL at all"
    leaked = [sql for sql in _SEEN if MARK in sql]
    assert leaked == []
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert ("checkpoints",) in tables
