"""The codec's round trip is exact, and the fast encoder (orjson) changes nothing
compared with the stdlib: both decode to the same values, of the same types."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import uuid
from collections import OrderedDict
from datetime import date, time
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakpilot_store.codec import MAX_DEPTH, MAX_INT, MIN_INT, _problem, decode, encode
from breakpilot_store.errors import CheckpointTypeError, CheckpointValueError
from tests.strict import same

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(MIN_INT, MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=5))
def test_round_trip_is_exact_and_matches_the_stdlib(value: dict) -> None:
    text = encode(value, "data")
    assert same(decode(text), value)
    assert same(json.loads(text), value)  # any JSON reader gets the same values
    stdlib = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert same(decode(stdlib), decode(text))


@pytest.mark.parametrize(
    ("value", "error", "path"),
    [
        ({"a": {"b": [1, float("nan")]}}, CheckpointValueError, "data['a']['b'][1]"),
        ({"a": MAX_INT + 1}, CheckpointValueError, "data['a']"),
        ({"a": MIN_INT - 1}, CheckpointValueError, "data['a']"),
        ({"k": {(1, 2): 3}}, CheckpointTypeError, "data['k']"),
        ({"s": {"x"}}, CheckpointTypeError, "data['s']"),
        ({"b": bytearray(b"x")}, CheckpointTypeError, "data['b']"),
        ({"t": True, "u": "\udfff"}, CheckpointValueError, "data['u']"),
    ],
)
def test_refusals_name_the_path(value: dict, error: type, path: str) -> None:
    with pytest.raises(error) as info:
        encode(value, "data")
    assert str(info.value).startswith(path + ":")


def test_subclasses_are_refused() -> None:
    class Tag(str):
        pass

    class Mapping(dict):
        pass

    with pytest.raises(CheckpointTypeError, match=r"data\['t'\]: Tag"):
        encode({"t": Tag("x")}, "data")
    with pytest.raises(CheckpointTypeError):
        encode({"m": Mapping()}, "data")


def test_depth_and_cycles() -> None:
    deep: Any = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CheckpointValueError, match="nested deeper"):
        encode({"d": deep}, "data")
    ok: Any = []
    for _ in range(MAX_DEPTH - 2):
        ok = [ok]
    assert decode(encode({"d": ok}, "data")) == {"d": ok}
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(CheckpointValueError, match="cycle|nested"):
        encode(loop, "data")


# -- values JSON writers turn into something else (enums into their value, tuples into
# lists, NaN into null) are refused, and the fast check agrees with the slow walk ------


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class Tone(str, enum.Enum):  # noqa: UP042 - the mixin form, as older code writes it
    SOFT = "soft"


class Mode(enum.StrEnum):
    FAST = "fast"


@dataclasses.dataclass
class Point:
    x: int


HOSTILE = [
    (Colour.RED, CheckpointTypeError, "Colour"),
    (Level.LOW, CheckpointTypeError, "Level"),
    (Tone.SOFT, CheckpointTypeError, "Tone"),
    (Mode.FAST, CheckpointTypeError, "Mode"),
    (uuid.UUID(int=7), CheckpointTypeError, "UUID"),
    (orjson.Fragment(b"[1]"), CheckpointTypeError, "Fragment"),
    ((1, 2), CheckpointTypeError, "tuple"),
    ((), CheckpointTypeError, "tuple"),
    (date(2020, 1, 1), CheckpointTypeError, "date"),
    (time(1, 2), CheckpointTypeError, "time"),
    (Point(1), CheckpointTypeError, "Point"),
    (OrderedDict(a=1), CheckpointTypeError, "OrderedDict"),
    (Decimal("1.5"), CheckpointTypeError, "Decimal"),
    (frozenset([1]), CheckpointTypeError, "frozenset"),
    (float("inf"), CheckpointValueError, "NaN/Infinity"),
    (float("-inf"), CheckpointValueError, "NaN/Infinity"),
    (float("nan"), CheckpointValueError, "NaN/Infinity"),
]


@pytest.mark.parametrize(("value", "error", "named"), HOSTILE, ids=lambda v: repr(v)[:20])
def test_hostile_leaves_are_refused_at_their_path(value: Any, error: type, named: str) -> None:
    for wrapped, path in (
        ({"v": value}, "data['v']"),
        ({"deep": [{"x": [1, value]}]}, "data['deep'][0]['x'][1]"),
    ):
        with pytest.raises(error) as info:
            encode(wrapped, "data")
        assert str(info.value).startswith(path + ":"), str(info.value)
        assert named in str(info.value)


HOSTILE_LEAVES = st.sampled_from([v for v, _, _ in HOSTILE] + [b"x", {1, 2}, object()])
MIXED = st.recursive(
    st.one_of(LEAVES, HOSTILE_LEAVES),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
        st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2),  # int keys
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=4), MIXED, max_size=4))
def test_the_fast_check_agrees_with_the_strict_walk(value: dict) -> None:
    # The slow walk, which names the problem, is the reference: the fast check accepts a
    # value exactly when the walk finds nothing wrong with it.
    problem = _problem(value, "data", 0, set())
    if problem is None:
        assert same(decode(encode(value, "data")), value)
    else:
        with pytest.raises(type(problem)) as info:
            encode(value, "data")
        assert str(info.value) == str(problem)


# -- the fast check's float scan: every NaN/Infinity found, false alarms harmless ------


def test_an_integer_that_looks_like_a_nan_in_msgpack_still_round_trips() -> None:
    # 0xcb7ff0... packs as uint64 bytes "cf cb 7f f0 ...": the scan's NaN pattern inside
    # another number. The value is valid: the slow check finds nothing and it is stored.
    for value in (0xCB7FF00000000000, 0xCAFF800000000000, -0x347FF00000000000):
        text = encode({"n": value, "f": [1.5, -0.0]}, "data")
        assert same(decode(text), {"n": value, "f": [1.5, -0.0]})


@pytest.mark.parametrize("tail", ["\u02c7", "\u02ff", "\u02ff\u02ff", "x\u02c0"])
def test_text_whose_utf8_ends_in_the_float_marker_round_trips(tail) -> None:
    # U+02C0..U+02FF encode as 0xcb 0x80..0xbf: the scan's float marker as the last two
    # bytes of the msgpack (no float can start there), or inside text, never a NaN.
    value = {"s": "\u02ff" * 3 + tail}
    assert same(decode(encode(value, "data")), value)
    assert same(decode(encode({"n": [1.5], "s": tail}, "data")), {"n": [1.5], "s": tail})


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40))
def test_every_non_finite_float_is_refused_wherever_it_sits(floats) -> None:
    value = {"messages": [{"content": "x" * 70, "score": f} for f in floats]}
    bad = [i for i, f in enumerate(floats) if f != f or f in (float("inf"), float("-inf"))]
    if not bad:
        assert same(decode(encode(value, "data")), value)
        return
    with pytest.raises(CheckpointValueError) as info:
        encode(value, "data")
    assert str(info.value).startswith(f"data['messages'][{bad[0]}]['score']:")


def test_the_utf8_form_is_the_texts() -> None:
    from breakpilot_store.codec import encode_object, encode_object_utf8

    value = {"a": "größe ✓", "b": [1, 2.5, None, True], "c": {"d": "\u0000"}}
    assert encode_object_utf8(value, "data") == encode_object(value, "data").encode()
    assert encode_object_utf8(None, "metadata", optional=True) == b"{}"
    with pytest.raises(CheckpointTypeError):
        encode_object_utf8([1], "data")


def test_messages_stay_short_whatever_the_path() -> None:
    """A path 500 levels deep under 50-character keys named itself in 27 KB, and a
    60,000-character key in 60 KB: the middle is cut, both ends say where."""
    deep: dict = {}
    for _ in range(MAX_DEPTH + 5):
        deep = {"k" * 50: deep}
    with pytest.raises(CheckpointValueError) as caught:
        encode(deep, "data")
    message = str(caught.value)
    assert len(message) < 600
    assert message.startswith("data['kkkk")
    assert message.endswith(f"']: nested deeper than {MAX_DEPTH} levels")
    assert re.search(r"\.\.\.\(2\d,\d{3} characters\)\.\.\.", message)

    with pytest.raises(CheckpointValueError) as caught:
        encode({"a": {"k" * 60_000: float("nan")}}, "data")
    message = str(caught.value)
    assert len(message) < 600
    assert message.startswith("data['a']['kkkk") and message.endswith(
        "is not valid JSON (NaN/Infinity)"
    )

    with pytest.raises(CheckpointTypeError, match=r"^data\['a'\]: key 5 is of type int; "):
        encode({"a": {5: 1}}, "data")
