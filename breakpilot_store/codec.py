"""Strict JSON encoding of checkpoint ``data`` and ``metadata``.

A checkpoint must come back exactly as it went in, so only values that survive a JSON
round trip unchanged are accepted: ``dict`` with ``str`` keys, ``list``, ``str``, ``int``
(64-bit: ``MIN_INT..MAX_INT``), finite ``float``, ``bool`` and ``None`` (exact types, not
subclasses). Anything else
(tuples, sets, bytes, datetimes, NaN, enums, ...) is refused with an error naming the
offending path, e.g. ``data['messages'][3]['at']``.

The check is done twice on purpose: a fast recursive pass that only answers yes/no, and,
only when that says no, a slow pass that finds the first offending path for the message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from .errors import CheckpointTypeError, CheckpointValueError

#: Deepest nesting accepted. The stdlib decoder (and SQLite's JSON functions) recurse, so a
#: bound well under Python's recursion limit keeps decoding safe for every stored value.
MAX_DEPTH = 500

#: Longest session id or checkpoint name accepted, in characters. They are keys of
#: indexes and appear in every id; a bound keeps indexes sane and errors clear.
MAX_KEY_LENGTH = 1024


#: The integers accepted: what a 64-bit JSON parser reads back exactly (orjson's range).
#: Larger ones would come back as floats from orjson, SQLite's JSON functions and most
#: JSON readers, so they are refused rather than silently rounded.
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1

# orjson is ~4-10x faster than the stdlib both ways, but it is not a drop-in: it writes
# NaN as null and turns integers beyond 64 bits into floats when decoding. It therefore
# runs only behind the strict validator (no NaN reaches it), and integers outside
# MIN_INT..MAX_INT are refused (orjson.dumps raises on them, and the slow path names them).
_stdlib_encode = json.JSONEncoder(
    ensure_ascii=False,  # readable text at the sqlite3 prompt, like orjson's
    allow_nan=False,
    separators=(",", ":"),
).encode
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_OrjsonError = orjson.JSONEncodeError


def decode(text: str | bytes) -> Any:
    """Decode stored JSON text (as the codec wrote it) back into Python values."""
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # hand-written text orjson refuses (e.g. NaN): stdlib rules


def _ok(value: Any, depth: int) -> bool:
    """Answer whether ``value`` is strictly JSON (fast path, no diagnostics)."""
    t = type(value)
    if t is dict:
        if depth >= MAX_DEPTH:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or tv is int or tv is bool or v is None:
                continue
            if tv is float:
                if v - v != 0.0:  # NaN and +/-Infinity
                    return False
                continue
            if not _ok(v, depth + 1):
                return False
        return True
    if t is list:
        if depth >= MAX_DEPTH:
            return False
        for v in value:
            tv = type(v)
            if tv is str or tv is int or tv is bool or v is None:
                continue
            if tv is float:
                if v - v != 0.0:
                    return False
                continue
            if not _ok(v, depth + 1):
                return False
        return True
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return value - value == 0.0
    return False


def _short_int(value: int) -> str:
    """Render an integer for a message; str() itself refuses more than 4300 digits."""
    digits = value.bit_length() * 30103 // 100000  # log10(2) = 0.30103
    return str(value) if digits < 40 else f"{'-' if value < 0 else ''}(about {digits} digits)"


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(value: Any, path: str, depth: int, seen: set[int]) -> Exception | None:
    """Find the first offending value below ``path`` and describe it (slow path)."""
    t = type(value)
    if t is str:
        if not _utf8_ok(value):
            return CheckpointValueError(
                f"{path}: string contains a lone surrogate and cannot be stored as UTF-8"
            )
        return None
    if t is bool or value is None:
        return None
    if t is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return CheckpointValueError(
            f"{path}: integer {_short_int(value)} is outside the 64-bit range JSON readers "
            "keep exactly "
            f"({MIN_INT}..{MAX_INT}); store it as a string"
        )
    if t is float:
        if math.isfinite(value):
            return None
        return CheckpointValueError(f"{path}: {value!r} is not valid JSON (NaN/Infinity)")
    if t is dict or t is list:
        if id(value) in seen:
            return CheckpointValueError(f"{path}: the value contains itself (a cycle)")
        if depth >= MAX_DEPTH:
            return CheckpointValueError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        seen.add(id(value))
        try:
            if t is dict:
                for k, v in value.items():
                    if type(k) is not str:
                        return CheckpointTypeError(
                            f"{path}: key {k!r} is a {type(k).__name__}; "
                            "JSON object keys must be str"
                        )
                    if not _utf8_ok(k):
                        return CheckpointValueError(f"{path}: key {k!r} contains a lone surrogate")
                    found = _problem(v, f"{path}[{k!r}]", depth + 1, seen)
                    if found is not None:
                        return found
            else:
                for i, v in enumerate(value):
                    found = _problem(v, f"{path}[{i}]", depth + 1, seen)
                    if found is not None:
                        return found
        finally:
            seen.discard(id(value))
        return None
    hint = " (use a list)" if t is tuple else ""
    return CheckpointTypeError(
        f"{path}: {t.__name__} is not a JSON type{hint}; "
        "allowed: dict, list, str, int, float, bool, None"
    )


def encode(value: Any, path: str) -> str:
    """Validate ``value`` strictly and return its compact JSON text.

    Args:
        value: The object to encode (normally a dict).
        path: How to name the value in an error message, e.g. ``"data"``.

    Returns:
        The JSON text, which decodes back to a value equal to ``value``.

    Raises:
        CheckpointTypeError: A value (or key) of a type JSON cannot carry exactly.
        CheckpointValueError: NaN/Infinity, a lone surrogate, a cycle or too deep nesting.
    """
    # The walk, not an orjson round trip compared with ``==``: orjson writes enums
    # natively and IntEnum/StrEnum members equal their values, so they would pass and
    # come back as plain int/str. The walk refuses every type that is not exactly JSON's.
    if _ok(value, 0):
        try:
            # Strict JSON from here on; orjson refuses (rather than mangles) the two
            # things the fast validator lets through: integers beyond 64 bits and lone
            # surrogates. The slow pass below then names them.
            return _orjson_dumps(value).decode()
        except _OrjsonError:
            pass
    problem = _problem(value, path, 0, set())
    if problem is not None:
        raise problem
    # Valid, but deeper than orjson writes (it stops at 255 levels): the stdlib writes
    # the same JSON, only slower.
    return _stdlib_encode(value)


def encode_object(value: Any, path: str, *, optional: bool = False) -> str:
    """Encode a dict (``data`` or ``metadata``); ``None`` means ``{}`` when optional.

    Raises:
        CheckpointTypeError: ``value`` is not a dict, or holds a non-JSON value.
        CheckpointValueError: ``value`` holds NaN/Infinity or is nested too deep.
    """
    if value is None and optional:
        return "{}"
    if type(value) is not dict:
        kind = "a dict or None" if optional else "a dict"
        raise CheckpointTypeError(f"{path} must be {kind}, not {type(value).__name__}")
    return encode(value, path)


def encode_parsed_object(value: Any, path: str, *, optional: bool = False) -> str:
    """:func:`encode_object` for a value a JSON parser returned, with no NaN or infinity.

    Such a value holds only JSON types with ``str`` keys, so the strict walk is skipped:
    orjson writes it exactly, or refuses what the codec refuses too (integers beyond 64
    bits, lone surrogates), or nesting beyond its 255 levels; those take the full path,
    which names the offending value or writes deep nesting with the stdlib.
    """
    if type(value) is dict:
        try:
            return _orjson_dumps(value).decode()
        except _OrjsonError:
            pass
    return encode_object(value, path, optional=optional)


def check_key(value: Any, what: str) -> str:
    """Check a session id or checkpoint name: a non-empty ``str`` without NUL.

    Raises:
        CheckpointTypeError: ``value`` is not a str.
        CheckpointValueError: empty, contains NUL or a lone surrogate, or too long.
    """
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)
        else:
            raise CheckpointTypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise CheckpointValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise CheckpointValueError(f"{what} must not contain NUL characters: {value!r}")
    if len(value) > MAX_KEY_LENGTH:
        raise CheckpointValueError(
            f"{what} is {len(value)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if not value.isascii() and not _utf8_ok(value):
        raise CheckpointValueError(f"{what} contains a lone surrogate: {value!r}")
    return value
