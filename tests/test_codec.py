"""The codec's round trip is exact, and the fast encoder (orjson) changes nothing
compared with the stdlib: both decode to the same values, of the same types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakpilot_store.codec import MAX_DEPTH, MAX_INT, MIN_INT, decode, encode
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
