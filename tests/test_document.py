"""The import document reader: from a stream, in pieces of any size, it reads exactly what
it reads from the whole text, and refuses exactly what that refuses, with the same
message (positions named in the whole document).

Pieces as small as one byte cut entries, strings, escapes, numbers, literals and UTF-8
sequences everywhere; the reference is the same reader over the whole text, itself
checked against ``json.loads``.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from breakpilot_store.core import document as document
from breakpilot_store.core.document import parse_document, read_document
from breakpilot_store.errors import ImportFormatError
from tests.strict import same

SPACE = st.sampled_from(["", " ", "\n", "\n  ", "\t", "\r\n"])
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["-0", "1E5", "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "0.5e-3"]),
)
STRING = st.one_of(
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(max_size=12).map(json.dumps),
    st.sampled_from(['"\\ud83d\\ude80"', '"a\\u0000b"', '"\\"q\\\\"', '"ünï ✓ 🚀"']),
)
LEAF = st.one_of(NUMBER, STRING, st.sampled_from(["true", "false", "null"]))


@st.composite
def value(draw: Any, depth: int = 0) -> str:
    if depth >= 3 or draw(st.booleans()):
        return draw(LEAF)
    sp = draw(SPACE)
    if draw(st.booleans()):
        items = draw(st.lists(value(depth + 1), max_size=4))
        return "[" + sp + ("," + sp).join(items) + sp + "]"
    pairs = draw(st.lists(st.tuples(STRING, value(depth + 1)), max_size=4))
    return "{" + sp + ("," + sp).join(f"{k}{sp}:{sp}{v}" for k, v in pairs) + sp + "}"


@st.composite
def array(draw: Any) -> str:
    sp = draw(SPACE)
    items = draw(st.lists(value(), max_size=6))
    return draw(SPACE) + "[" + sp + ("," + sp).join(items) + sp + "]" + draw(SPACE)


def whole(text: str) -> Any:
    """Entries and plain flags from the whole text, or the refusal's message."""
    try:
        return list(parse_document(text).entries())
    except ImportFormatError as exc:
        return ("refused", str(exc))


def pieces(text: str | bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same, read from a stream ``chunk`` bytes at a time."""
    monkeypatch.setattr(document, "CHUNK", chunk)
    raw = text.encode() if isinstance(text, str) else text
    try:
        return list(read_document(io.BytesIO(raw)).entries())
    except ImportFormatError as exc:
        return ("refused", str(exc))


def identical(a: Any, b: Any) -> bool:
    return same(a, b, nan_equal=True)


def finite(v: Any) -> bool:
    if type(v) is float:
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(finite(x) for x in v.values())
    if isinstance(v, list):
        return all(finite(x) for x in v)
    return True


def agree(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return len(a) == len(b) and all(
        x[1] == y[1] and identical(x[0], y[0]) for x, y in zip(a, b, strict=True)
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(array(), st.sampled_from([1, 2, 3, 7, 64, 4096]))
@example('[{"a": 12345}, 678]', 1)
@example("[1e400, NaN, -Infinity, 1]", 2)
def test_pieces_read_what_the_whole_text_reads(monkeypatch, text, chunk):
    reference = whole(text)
    assert not isinstance(reference, tuple), reference  # the strategy makes valid arrays
    stdlib = json.loads(text)
    assert len(reference) == len(stdlib)
    for (entry, plain), v in zip(reference, stdlib, strict=True):
        assert identical(entry, v)
        assert finite(v) or not plain  # never plain with NaN or infinity in it
    assert agree(pieces(text, chunk, monkeypatch), reference)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(array(), st.data(), st.sampled_from([1, 3, 16, 4096]))
def test_a_broken_document_is_refused_alike_with_the_same_position(monkeypatch, text, data, chunk):
    cut = data.draw(st.integers(1, len(text)))
    how = data.draw(st.sampled_from(["truncate", "garbage", "drop"]))
    if how == "truncate":
        broken = text[:cut]
    elif how == "garbage":
        broken = (
            text[:cut]
            + data.draw(st.sampled_from(["x", "}", ",", "]", '"', "\\", "[["]))
            + text[cut:]
        )
    else:
        broken = text[: cut - 1] + text[cut:]
    if not broken.lstrip(" \t\n\r").startswith("["):
        return  # the whole-text reader then names the type instead (parse_document)
    expected = whole(broken)
    assert agree(pieces(broken, chunk, monkeypatch), expected), (broken, expected)
    try:
        json.loads(broken)
    except ValueError:
        assert isinstance(expected, tuple) and "not valid JSON" in expected[1]


def test_positions_are_named_in_the_whole_document(monkeypatch):
    entry = json.dumps({"id": "s:1", "name": "n", "data": {"x": "y" * 50}}, indent=2)
    text = "[\n" + ",\n".join([entry] * 400) + "\n  oops]"
    message = whole(text)[1]
    assert "line" in message and f"(char {text.index('oops')})" in message
    for chunk in (5, 100, 4096):
        assert pieces(text, chunk, monkeypatch) == ("refused", message)


def test_an_entry_far_larger_than_a_piece_is_read(monkeypatch):
    big = {"blob": "ü" * 300_000, "n": [1.5] * 10_000}
    text = json.dumps([{"a": 1}, big, {"b": 2}], ensure_ascii=False)
    got = pieces(text, 64, monkeypatch)
    assert [e for e, _ in got] == [{"a": 1}, big, {"b": 2}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON: Expecting value"),
        (b"   \n", "not valid JSON: Expecting value"),
        (b'{"id": 1}', "must be a JSON array of checkpoints"),
        (b"[1, 2] [", "Extra data"),
        (b"[1, 2]" + b" " * 5000 + b"x", "Extra data"),
        (b'["\xff"]', "not UTF-8"),
        (b'["caf\xc3', "not UTF-8"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_what_a_stream_is_refused_for(monkeypatch, raw, message):
    got = pieces(raw, 7, monkeypatch)
    assert got[0] == "refused" and message in got[1], got


def test_nothing_is_read_before_the_document_is():
    stream = io.BytesIO(b"[1]")
    doc = read_document(stream)
    assert stream.tell() == 0
    assert list(doc) == [1]
