"""The export fast path writes exactly what the Checkpoint path wrote, byte for byte.

``reference_export`` is the export as it was before the fast path (``Checkpoint``
objects from ``iter_checkpoints``, ``to_dict()``, one orjson call per 256 with the
stdlib for deep nesting), kept here to compare with. Sessions are written through the
store and, on SQLite, also by hand the way an operator could (other timestamp
spellings, NaN, BLOBs, spacing), on every backend the run has.
"""

from __future__ import annotations

import json
import sqlite3
import string
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakpilot_store import Checkpoint, CheckpointStore, CorruptDatabaseError, DatabaseError
from breakpilot_store.core.transfer import EXPORT_BATCH, RENDER_BATCH, seed_timestamp
from breakpilot_store.schema import to_text

# -- the export before the fast path ---------------------------------------------------


def _dump_batch(batch: list[dict[str, Any]]) -> str:
    try:
        text = orjson.dumps(batch, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:
        text = json.dumps(batch, indent=2, ensure_ascii=False)
    return text[2:-2]


def _reference_chunks(
    checkpoints: Iterable[Checkpoint], origins: dict[int, str] | None = None
) -> Iterator[str]:
    first = True
    batch: list[dict[str, Any]] = []
    for cp in checkpoints:
        batch.append(cp.to_dict())
        if origins and cp.seq in origins:  # the one key added since: provenance
            batch[-1]["origin_id"] = origins[cp.seq]
        if len(batch) == 256:
            yield ("[\n" if first else ",\n") + _dump_batch(batch)
            first = False
            batch = []
    if batch:
        yield ("[\n" if first else ",\n") + _dump_batch(batch)
        first = False
    yield "[]" if first else "\n]"


def reference_export(store: CheckpointStore, session_id: str) -> str:
    """The pre-fast-path export of ``session_id`` (through ``Checkpoint`` objects).

    Plus ``origin_id`` on the rows imported from other sessions, read raw.
    """
    origins = dict(
        store.execute_read(
            "SELECT seq, origin_id FROM checkpoints WHERE session_id = :s "
            "AND origin_id IS NOT NULL",
            {"s": session_id},
        )
    )
    return "".join(_reference_chunks(store.iter_checkpoints(session_id), origins))


def exports(store: CheckpointStore, session_id: str) -> tuple[str, str, bytes]:
    """``export_json``, the joined ``export_chunks`` and the joined ``export_bytes``."""
    return (
        store.export_json(session_id),
        "".join(store.export_chunks(session_id)),
        b"".join(store.export_bytes(session_id)),
    )


def assert_exports_as_before(store: CheckpointStore, session_id: str) -> str:
    expected = reference_export(store, session_id)
    as_json, chunks, raw = exports(store, session_id)
    assert as_json == expected
    assert chunks == expected
    assert raw == expected.encode("utf-8", "surrogatepass")
    return expected


@pytest.fixture
def store(backend_url):
    with CheckpointStore(backend_url) as s:
        yield s


def _deep(levels: int) -> Any:
    value: Any = [1.5e-7]
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


def _payload(i: int) -> dict[str, Any]:
    return {
        "step": i,
        "text": ["plain", "Größe ✓", "emoji 🦜", 'quote " backslash \\ nul \x00'][i % 4],
        "floats": [1.5e-7, 0.1, -0.0, 1e300, 123456789.0],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1],
        "empty": [{}, []],
        "nested": {"a": [{"b": None, "c": True}]},
    }


# -- byte for byte ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, EXPORT_BATCH - 1, EXPORT_BATCH, EXPORT_BATCH + 1, 700])
def test_export_is_byte_identical_to_the_checkpoint_path(store, n):
    for i in range(n):
        store.create(
            "agent", f"step-{i % 7}", _payload(i), None if i % 3 else {"model": "m-1", "i": i}
        )
    expected = assert_exports_as_before(store, "agent")
    assert json.loads(expected) == [cp.to_dict() for cp in store.iter_checkpoints("agent")]
    assert len(json.loads(expected)) == n


def test_unknown_session_exports_an_empty_array(store):
    assert exports(store, "nobody") == ("[]", "[]", b"[]")
    assert reference_export(store, "nobody") == "[]"


def test_zero_microsecond_timestamps_omit_the_fraction(store):
    # isoformat() drops ".000000"; the stored text keeps it (SQLite's fixed width).
    stamps = [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.000001+00:00",
        "2026-01-01T00:00:01.100000+00:00",
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59.999999+00:00",
        "2026-07-01T12:00:00+02:00",  # stored in UTC: 10:00:00, no fraction
    ]
    doc = [
        {"id": f"elsewhere:{i + 1}", "name": "n", "timestamp": s, "data": {"i": i}}
        for i, s in enumerate(stamps)
    ]
    assert store.import_checkpoints("agent", doc) == len(stamps)
    expected = assert_exports_as_before(store, "agent")
    got = [e["timestamp"] for e in json.loads(expected)]
    assert got == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.000001+00:00",
        "2026-01-01T00:00:01.100000+00:00",
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59.999999+00:00",
        "2026-07-01T10:00:00+00:00",
    ]


@pytest.mark.parametrize(
    "deep_at",
    [
        0,
        EXPORT_BATCH + 10,
        EXPORT_BATCH + RENDER_BATCH + 5,
        2 * EXPORT_BATCH - 1,
        2 * EXPORT_BATCH + 4,
    ],
)
def test_deep_nesting_falls_back_to_the_stdlib_for_its_batch_only(store, deep_at):
    # orjson writes at most 255 levels; the stdlib writes that batch, and spells floats
    # its own way (1.5e-07), so the output shows exactly which entries it wrote. Its
    # batch is rendered by orjson in smaller pieces first: those must not stay.
    n = 2 * EXPORT_BATCH + 5
    for i in range(n):
        store.create("agent", "n", {"deep": _deep(300)} if i == deep_at else {"f": 1.5e-7})
    expected = assert_exports_as_before(store, "agent")
    flat = [line.strip() for line in expected.splitlines() if line.strip().startswith('"f"')]
    by_stdlib = [i // EXPORT_BATCH == deep_at // EXPORT_BATCH for i in range(n) if i != deep_at]
    assert [line == '"f": 1.5e-07' for line in flat] == by_stdlib
    assert json.loads(expected)[deep_at]["data"] == {"deep": _deep(300)}


# -- rows written by hand (SQLite) -----------------------------------------------------


@pytest.fixture
def lite(tmp_path):
    path = tmp_path / "hand.db"
    with CheckpointStore(path) as s:
        for i in range(EXPORT_BATCH + 4):
            s.create("agent", "n", {"i": i, "f": 1.5e-7}, {"m": i} if i % 2 else None)
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            yield s, raw
        finally:
            raw.close()


def _set(raw: sqlite3.Connection, seq: int, column: str, value: Any) -> None:
    raw.execute(f"UPDATE checkpoints SET {column} = ? WHERE seq = ?", (value, seq))


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-01T00:00:00.000000+00:00",  # what the store writes for microsecond 0
        "2026-01-01 00:00:00.000000+00:00",  # a space for the T
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.5+00:00",
        "2026-01-01T00:00:00.1234567+00:00",
        "2026-01-01T00:00:00,250000+00:00",
        "2026-01-01T00:00:00.250000Z",
        "2026-01-01T00:00:00.250000-00:00",
        "2026-01-01T02:00:00.250000+02:00",
        "2026-01-01T00:00:00.250000",  # naive
        "2026-W01-1T00:00:00.250000+00:00",  # an ISO week date, as long as ours
        "20260101T000000.250000+00:00",
    ],
)
def test_hand_written_timestamps_export_as_before(lite, stamp):
    store, raw = lite
    _set(raw, 3, "created_at", stamp)
    assert_exports_as_before(store, "agent")


@pytest.mark.parametrize("stamp", ["2026-02-30T00:00:00.000000+00:00", "yesterday"])
def test_an_unreadable_timestamp_fails_as_before(lite, stamp):
    # Typed since round 6 (it was the ValueError of datetime.fromisoformat), naming the row.
    store, raw = lite
    _set(raw, EXPORT_BATCH + 2, "created_at", stamp)
    row = f"agent:{EXPORT_BATCH + 2}"
    with pytest.raises(CorruptDatabaseError, match="not a timestamp"):
        reference_export(store, "agent")  # (Core's typed column: no row to name there)
    with pytest.raises(CorruptDatabaseError, match=row):
        store.export_json("agent")
    with pytest.raises(CorruptDatabaseError, match=row):
        "".join(store.export_chunks("agent"))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("data", '{ "spaced" : [ 1.0e-7 , 2 ] }'),
        ("data", '{"nan": NaN, "inf": -Infinity}'),  # orjson refuses: the stdlib reads it
        ("data", '{"big": 123456789012345678901234567890}'),
        ("data", '{"lone": "\\ud800"}'),  # a lone surrogate: the stdlib writes it as is
        ("data", b'{"blob": "\xc3\xa9"}'),
        ("data", "[1, 2]"),
        ("metadata", "{ }"),
        ("metadata", '{"nan": NaN}'),
        ("metadata", b"{}"),
        ("metadata", "null"),
    ],
)
def test_hand_written_json_exports_as_before(lite, column, value):
    store, raw = lite
    _set(raw, 5, column, value)
    assert_exports_as_before(store, "agent")


def test_driver_errors_while_reading_are_typed(lite):
    store, raw = lite
    raw.execute("ALTER TABLE checkpoints RENAME TO gone")
    for export in (store.export_json, lambda s: "".join(store.export_chunks(s))):
        with pytest.raises(DatabaseError) as caught:
            export("agent")
        assert isinstance(caught.value.__cause__, sqlite3.Error)


# -- timestamps ------------------------------------------------------------------------

STAMPS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)
)


@settings(max_examples=300, deadline=None)
@given(stamp=STAMPS, zero=st.booleans())
def test_stored_text_renders_as_isoformat(stamp, zero):
    if zero:
        stamp = stamp.replace(microsecond=0)
    assert seed_timestamp(to_text(stamp)) == stamp.isoformat()
    assert seed_timestamp(stamp) == stamp.isoformat()  # PostgreSQL's datetimes


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        STAMPS.map(to_text).flatmap(
            # Our own text with one character replaced: any shape fromisoformat takes.
            lambda s: st.tuples(
                st.integers(0, len(s) - 1), st.sampled_from(string.digits + "-:T .,+Z")
            ).map(lambda edit: s[: edit[0]] + edit[1] + s[edit[0] + 1 :])
        ),
        st.text(alphabet=string.digits + "-:T .,+ZW", min_size=20, max_size=34),
    )
)
def test_any_text_renders_as_datetime_would(text):
    # As datetime reads it, in UTC (text without an offset is UTC, as SQLite writes it);
    # what datetime cannot read is a typed error (round 6; it was its ValueError).
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        with pytest.raises(CorruptDatabaseError):
            seed_timestamp(text)
        return
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    assert seed_timestamp(text) == parsed.astimezone(timezone.utc).isoformat()


# -- one snapshot, and interleaving --------------------------------------------------


def _stored(store: CheckpointStore, n: int) -> None:
    # ~1 KB each, as agents' are: the str export gathers ~256 KB before it yields, so
    # three batches of these span several pieces (asserted where it matters).
    for i in range(n):
        store.create("agent", "n", {"i": i, "pad": "x" * 1000})


def test_a_create_between_chunks_on_the_same_store_and_thread(store):
    # The export's read transaction is on a connection of its own: on SQLite, the hot
    # path's pinned connection would refuse BEGIN IMMEDIATE inside it (or, without an
    # explicit BEGIN, let the open SELECT see the new row).
    _stored(store, 3 * EXPORT_BATCH)
    expected = reference_export(store, "agent")
    chunks = store.export_chunks("agent")
    got = [next(chunks)]
    assert len(got[0]) < len(expected) // 2  # the export is part-way: its transaction open
    created = store.create("agent", "between", {"x": 1})
    assert created.id == f"agent:{3 * EXPORT_BATCH + 1}"
    assert store.get_latest("agent").id == created.id
    got.extend(chunks)
    assert "".join(got) == expected
    assert json.loads(store.export_json("agent"))[-1]["id"] == created.id


def test_an_export_is_one_snapshot_while_others_write(store, backend_url):
    _stored(store, 3 * EXPORT_BATCH)
    expected = reference_export(store, "agent")
    pieces = store.export_bytes("agent")
    got = [bytes(next(pieces))]
    with CheckpointStore(backend_url) as other:  # another writer (another process, say)
        other.create("agent", "late", {"x": 1})
        assert other.clear("agent") == 3 * EXPORT_BATCH + 1
        other.create("agent", "after", {"y": 2})
    got.extend(bytes(p) for p in pieces)
    assert b"".join(got).decode() == expected
    assert [e["name"] for e in json.loads(store.export_json("agent"))] == ["after"]


def test_closing_a_partly_read_export_ends_its_transaction(tmp_path):
    # A TRUNCATE checkpoint waits busy_timeout for readers before it reports busy.
    with CheckpointStore(tmp_path / "d.db", busy_timeout=0.2) as store:
        _stored(store, 3 * EXPORT_BATCH)
        chunks = store.export_chunks("agent")
        assert len(next(chunks)) < len(reference_export(store, "agent")) // 2
        store.create("agent", "more", {})
        # The open snapshot keeps the WAL from being reset...
        assert store.wal_checkpoint("TRUNCATE")[0] == 1
        chunks.close()
        # ...until the export is closed: its statement and transaction are gone.
        assert store.wal_checkpoint("TRUNCATE") == (0, 0, 0)


def test_on_batch_counts_every_checkpoint(store):
    _stored(store, 2 * EXPORT_BATCH + 3)
    seen: list[int] = []
    text = "".join(store.export_chunks("agent", on_batch=seen.append))
    assert seen == [EXPORT_BATCH, EXPORT_BATCH, 3]
    assert text == reference_export(store, "agent")


def test_streaming_memory_does_not_grow_with_the_session(tmp_path):
    def peak(n: int) -> int:
        with CheckpointStore(tmp_path / f"{n}.db") as store:
            store.import_checkpoints(
                "agent",
                [
                    {
                        "id": f"x:{i + 1}",
                        "name": "n",
                        "timestamp": (
                            datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
                        ).isoformat(),
                        "data": _payload(i),
                    }
                    for i in range(n)
                ],
            )
            tracemalloc.start()
            try:
                for _ in store.export_chunks("agent"):
                    pass
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small, big = peak(1000), peak(4000)
    assert big < small * 1.5, (small, big)
