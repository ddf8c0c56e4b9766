"""The fast import path (no strict walk) imports exactly what the strict path imports,
and refuses exactly what it refuses, with the same messages.

``parse_document`` reads a document one entry at a time and marks each entry without NaN
or infinite numbers as plain: its values are encoded with orjson directly. These tests write
documents as text, byte by byte, including what orjson cannot write or would change
(integers beyond 64 bits, NaN, 1e400, lone surrogates, deep nesting), and compare the
fast path with the strict one.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.codec import MAX_DEPTH, MAX_INT, MIN_INT
from breakpilot_store.core.document import parse_document
from breakpilot_store.core.transfer import parse_entry
from breakpilot_store.errors import ImportFormatError, StoreClosedError
from tests.strict import same

STAMP = '"2026-03-01T12:00:00.250000+00:00"'

# JSON number spellings, including those the two parsers read differently.
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        [
            str(MAX_INT),
            str(MAX_INT + 1),
            str(MIN_INT),
            str(MIN_INT - 1),
            str(2**63),
            "1234567890123456789",  # 19 digits, in range: the stdlib reads it
            "-0",
            "-0.0",
            "1E5",
            "1e400",
            "-1e400",
            "0.1e-400",
            "NaN",
            "Infinity",
            "-Infinity",
            "1" + "0" * 30 + ".5",
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
STRINGS = st.one_of(
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(max_size=8).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"\\udc00x"', '"a\\u0000b"', '"\\ud83d\\ude80"', '"tab\\t"']),
)
LEAVES = st.one_of(NUMBERS, STRINGS, st.sampled_from(["true", "false", "null"]))
FRAGMENTS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(STRINGS, inner), max_size=4).map(
            lambda kvs: "{" + ", ".join(f"{k}: {v}" for k, v in kvs) + "}"
        ),
    ),
    max_leaves=12,
)


def _entry(index: int, data: str, metadata: str | None) -> str:
    meta = "" if metadata is None else f', "metadata": {{"m": {metadata}}}'
    return (
        f'{{"id": "src:{index + 1}", "name": "step", "timestamp": {STAMP}, '
        f'"data": {{"v": {data}}}{meta}}}'
    )


def _outcome(pairs: Any) -> Any:
    """Each ``(entry, plain)`` through parse_entry, as an import takes them."""
    try:
        return [
            (e.id, e.name, e.timestamp, e.data_text, e.metadata_text)
            for e in (parse_entry(x, i, parsed=plain) for i, (x, plain) in enumerate(pairs))
        ]
    except ImportFormatError as exc:
        return ("refused", str(exc))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(FRAGMENTS, st.one_of(st.none(), FRAGMENTS)), max_size=4))
def test_fast_path_equals_strict_path(pairs: list[tuple[str, str | None]]) -> None:
    text = "[" + ", ".join(_entry(i, d, m) for i, (d, m) in enumerate(pairs)) + "]"
    fast = _outcome(parse_document(text).entries())
    strict = _outcome((x, False) for x in json.loads(text))  # the stdlib, the strict walk
    assert fast == strict


def _plain(text: str | bytes) -> list[bool]:
    return [plain for _, plain in parse_document(text).entries()]


def test_fast_path_is_taken_unless_a_number_is_not_finite(tmp_path: Path) -> None:
    with CheckpointManager("src", store=tmp_path / "s.db") as m:
        m.create("step", {"n": MAX_INT, "m": MIN_INT, "f": 0.1, "s": "ünï ✓", "e": 1e308})
        m.create("step", {"n": 1})
        exported = m.export()
    assert _plain(exported) == [True, True]
    assert _plain(exported.encode()) == [True, True]
    assert _plain(f'[{{"v": {MAX_INT + 1}}}]') == [True]
    # Not finite: that entry (and only that one) takes the strict walk, which names it.
    for number in ("NaN", "Infinity", "-Infinity", "1e400", "-1E+309", "1" + "0" * 400 + ".5"):
        text = f'[{{"v": 1}}, {{"v": {number}}}, {{"v": 2.5}}]'
        assert _plain(text) == [True, False, True], number
        assert same(list(parse_document(text)), json.loads(text)) or number == "NaN"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("  ", "not valid JSON"),
        ('{"id": "a:1"}', "must be a JSON array of checkpoints, not dict"),
        ('"x"', "not str"),
        ("\ufeff[]", "not valid JSON"),
        ("[1,", "not valid JSON"),
        ("[1 2]", "Expecting ',' delimiter"),
        ("[1,]", "not valid JSON"),
        ("[1] x", "Extra data"),
        ("[] ]", "Extra data"),
        ("[", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_a_document_that_is_not_a_json_array_is_refused(text: str, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        list(parse_document(text))


@pytest.mark.parametrize("text", ["[]", " [ ] ", "\n[\n]\n", '[{"a": 1}]', ' [ 1 , [2] ,"x"] '])
def test_entries_are_read_as_the_stdlib_reads_the_whole_document(text: str) -> None:
    assert list(parse_document(text)) == json.loads(text)


def test_a_syntax_error_after_good_entries_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with CheckpointManager("dst", store=db) as m:
        m.create("before", {"x": 1})
    before = _rows(db)
    good = ", ".join(_entry(i, str(i), None) for i in range(2500))  # past a whole batch
    with pytest.raises(ImportFormatError, match="not valid JSON"):
        _import(db, "[" + good + ", {oops}]")
    assert _rows(db) == before


def _import(path: Path, text: str | bytes) -> int:
    with CheckpointManager("dst", store=path) as manager:
        return manager.import_checkpoints(text)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT session_id, seq, data FROM checkpoints ORDER BY 1, 2"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("number", "path"),
    [
        (str(MAX_INT + 1), "data['v']"),
        (str(MIN_INT - 1), "data['v']"),
        ("1" + "0" * 40, "data['v']"),
        ("1e400", "data['v']"),
        ("NaN", "data['v']"),
    ],
)
def test_values_orjson_would_change_are_refused_and_nothing_is_written(
    tmp_path: Path, number: str, path: str | None
) -> None:
    db = tmp_path / "d.db"
    with CheckpointManager("dst", store=db) as m:
        m.create("before", {"x": 1})
    before = _rows(db)
    text = "[" + _entry(0, "1", None) + ", " + _entry(1, number, None) + "]"
    with pytest.raises(ImportFormatError) as info:
        _import(db, text)
    assert "entry 1 ('src:2')" in str(info.value)
    if path is not None:
        assert path in str(info.value)
    assert _rows(db) == before


def test_extreme_64_bit_integers_are_stored_exactly(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    text = "[" + _entry(0, f"[{MAX_INT}, {MIN_INT}, 1234567890123456789]", None) + "]"
    assert _import(db, text) == 1
    ((_, _, data),) = _rows(db)
    assert data == f'{{"v":[{MAX_INT},{MIN_INT},1234567890123456789]}}'
    with CheckpointStore(db) as store:
        assert same(store.get("dst:1").data, {"v": [MAX_INT, MIN_INT, 1234567890123456789]})


@pytest.mark.parametrize("depth", [254, 300, MAX_DEPTH - 2])
def test_nesting_beyond_orjsons_writer_imports_and_round_trips(tmp_path: Path, depth: int) -> None:
    value = "[" * depth + "1" + "]" * depth
    db = tmp_path / "d.db"
    assert _import(db, "[" + _entry(0, value, None) + "]") == 1
    with CheckpointStore(db) as store:
        assert store.get("dst:1").data == {"v": json.loads(value)}


def test_nesting_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    value = "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH
    with pytest.raises(ImportFormatError, match=f"deeper than {MAX_DEPTH}"):
        _import(tmp_path / "d.db", "[" + _entry(0, value, None) + "]")


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(tmp_path: Path, fails: bool, enabled: bool):
    second = _entry(1, "NaN" if fails else "2", None)
    text = "[" + _entry(0, "1", None) + ", " + second + "]"
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        if fails:
            with pytest.raises(ImportFormatError):
                _import(tmp_path / "d.db", text)
        else:
            assert _import(tmp_path / "d.db", text) == 2
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("enabled", [True, False])
def test_export_leaves_the_garbage_collector_as_it_was(tmp_path: Path, fails: bool, enabled: bool):
    store = CheckpointStore(tmp_path / "d.db")
    manager = CheckpointManager("s", store=store)
    manager.create("step", {"x": 1})
    if fails:
        store.close()
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        if fails:
            with pytest.raises(StoreClosedError):
                manager.export()
        else:
            assert json.loads(manager.export())[0]["data"] == {"x": 1}
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
        store.close()
