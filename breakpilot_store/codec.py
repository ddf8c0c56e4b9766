"""Strict JSON encoding of checkpoint ``data`` and ``metadata``.

A checkpoint must come back exactly as it went in, so only values that survive a JSON
round trip unchanged are accepted: ``dict`` with ``str`` keys, ``list``, ``str``, ``int``
(64-bit: ``MIN_INT..MAX_INT``), finite ``float``, ``bool`` and ``None`` (exact types, not
subclasses). Anything else
(tuples, sets, bytes, datetimes, NaN, enums, ...) is refused with an error naming the
offending path, e.g. ``data['messages'][3]['at']``.

The check is done twice on purpose: a fast pass in C that only answers yes/no, and, only
when that says no, a slow pass that finds the first offending path for the message.

The fast pass is two C encoders that each refuse, between them, every type that is not
exactly JSON's (measured against the Python walk it replaced: 2-10x faster on chat
histories of 1 KB to 1 MB, benchmarks/OPTIMISATIONS.md). ormsgpack, with every
``OPT_PASSTHROUGH_*`` option and no ``default``, raises on tuples, enums, UUIDs,
datetimes, dataclasses, subclasses of the builtins, integers beyond 64 bits, non-str
keys, lone surrogates and ``orjson.Fragment``; orjson (which then writes the text)
raises on bytes and on the rest. The one thing both accept is a non-finite float:
ormsgpack writes every float as a 9-byte big-endian double whose marker byte can
never precede the pattern of NaN and infinity inside UTF-8 text, so a scan of its
output for that pattern finds every one (and, rarely, a false alarm inside another
number's bytes, which only sends the value down the slow pass).
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import orjson
import ormsgpack

from .errors import CheckpointTypeError, CheckpointValueError, CorruptDatabaseError

#: Deepest nesting accepted. The stdlib decoder (and SQLite's JSON functions) recurse, so a
#: bound well under Python's recursion limit keeps decoding safe for every stored value.
MAX_DEPTH = 500

T = TypeVar("T", str, bytes)

#: Largest JSON text of one stored value (a checkpoint's ``data`` and ``metadata``
#: together, or a framework's value), in UTF-8 bytes: SQLite's longest value
#: (SQLITE_MAX_LENGTH). PostgreSQL refuses a message over 1 GiB by closing the
#: connection, which would read as an unreachable server; checked before any I/O instead.
MAX_VALUE_BYTES = 1_000_000_000

#: Longest session id or checkpoint name accepted, in characters and in UTF-8 bytes.
#: They are keys of indexes and appear in every id; a bound keeps indexes sane and
#: errors clear (and two of them fit one PostgreSQL B-tree entry, 2,704 bytes).
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
# orjson raising (rather than writing them natively) on the builtins' subclasses,
# datetimes and dataclasses.
_ORJSON_STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_msgpack = ormsgpack.packb
_MSGPACK_STRICT = (
    ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_UUID
)
_MsgpackError = ormsgpack.MsgpackEncodeError


def _nonfinite(packed: bytes) -> bool:
    """Whether msgpack output may hold NaN or an infinity (no false negatives).

    ormsgpack writes every Python float as a float64: ``0xcb`` and 8 bytes, big-endian
    (a float32, ``0xca``, only comes from numpy scalars, which the strict options
    refuse). NaN and the infinities have every exponent bit set, so the two bytes after
    the marker are ``0x7f``/``0xff`` and then ``0xf?``. In UTF-8 text ``0xcb`` leads a
    two-byte character whose second byte is below ``0xc0``, never ``0x7f``/``0xff``.
    Markers are found with the one-byte ``bytes.find`` (memchr; a two-byte needle
    measured several times slower), and checked by indexing, not slicing (no objects
    made per marker: a 1 MB chat state holds a few hundred ``0xcb`` in its string
    lengths and text).
    """
    find = packed.find
    last = len(packed) - 3  # a float's marker has 8 bytes after it
    at = find(0xCB)
    while at != -1:
        if at <= last and packed[at + 1] in _HIGH and packed[at + 2] >= 0xF0:
            return True
        at = find(0xCB, at + 1)
    return False


_HIGH = (0x7F, 0xFF)


def decode(text: str | bytes, what: str = "a stored value") -> Any:
    """Decode stored JSON text (as the codec wrote it) back into Python values.

    Raises:
        CorruptDatabaseError: Text no JSON parser reads (written by hand or damaged),
            naming ``what``.
    """
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)  # hand-written text orjson refuses (e.g. NaN): stdlib rules
        except (ValueError, TypeError, RecursionError) as exc:
            # (UnicodeDecodeError is a ValueError: bytes that are not UTF-8.)
            raise CorruptDatabaseError(
                f"{what} is not readable JSON ({_shown(str(exc), 120)}); it was not "
                "written by this store: `breakpilot-store doctor` lists such rows"
            ) from exc


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


def _shown(text: str, limit: int = 200) -> str:
    """``text`` for a message, its middle cut out past ``limit`` characters.

    A path 500 levels deep under long keys, or a huge key, would make a message of
    tens of kilobytes; its start and end say where the value is.
    """
    if len(text) <= limit:
        return text
    cut = len(text) - limit + 20
    return f"{text[: limit // 2]}...({cut:,} characters)...{text[-limit // 2 + 20 :]}"


def _problem(value: Any, path: str, depth: int, seen: set[int]) -> Exception | None:
    """Find the first offending value below ``path`` and describe it, path shortened."""
    problem = _first_problem(value, path, depth, seen)
    if problem is not None and len(str(problem)) > 400:
        problem = type(problem)(_shorten(str(problem)))
    return problem


def _shorten(message: str) -> str:
    path, sep, rest = message.partition(": ")
    return f"{_shown(path)}{sep}{_shown(rest, 300)}"


def _first_problem(value: Any, path: str, depth: int, seen: set[int]) -> Exception | None:
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
                            f"{path}: key {k!r} is of type {type(k).__name__}; "
                            "JSON object keys must be str"
                        )
                    if not _utf8_ok(k):
                        return CheckpointValueError(f"{path}: key {k!r} contains a lone surrogate")
                    found = _first_problem(v, f"{path}[{k!r}]", depth + 1, seen)
                    if found is not None:
                        return found
            else:
                for i, v in enumerate(value):
                    found = _first_problem(v, f"{path}[{i}]", depth + 1, seen)
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


def encode_utf8(value: Any, path: str) -> bytes:
    """Validate ``value`` strictly and return its compact JSON text as UTF-8 bytes.

    Args:
        value: The object to encode (normally a dict).
        path: How to name the value in an error message, e.g. ``"data"``.

    Returns:
        The JSON text's UTF-8, which decodes back to a value equal to ``value``.

    Raises:
        CheckpointTypeError: A value (or key) of a type JSON cannot carry exactly.
        CheckpointValueError: NaN/Infinity, a lone surrogate, a cycle or too deep nesting.
    """
    # Not an orjson round trip compared with ``==``: orjson writes enums natively and
    # IntEnum/StrEnum members equal their values, so they would pass and come back as
    # plain int/str. See the module docstring for why these two calls refuse them.
    try:
        if not _nonfinite(_msgpack(value, option=_MSGPACK_STRICT)):
            return check_size(_orjson_dumps(value, option=_ORJSON_STRICT), path)
    except (_MsgpackError, _OrjsonError, TypeError, ValueError, RecursionError):
        pass
    problem = _problem(value, path, 0, set())
    if problem is not None:
        raise problem
    # Valid after all: a false alarm of the float scan, or deeper than the C encoders
    # go (255 levels), which the stdlib writes the same, only slower.
    try:
        return check_size(_orjson_dumps(value), path)
    except _OrjsonError:
        return check_size(_stdlib_encode(value).encode(), path)


def check_size(text: T, path: str, other: str | bytes = "") -> T:
    """Return ``text`` if it (with ``other``, stored in the same row) fits in a value.

    On every write, so the common case is one comparison: ``len`` counts characters of
    a ``str``, at least a quarter of its UTF-8 bytes, so the bytes are only counted
    when the text could be too large.

    Raises:
        CheckpointValueError: Over :data:`MAX_VALUE_BYTES` as UTF-8 JSON.
    """
    if len(text) + len(other) > MAX_VALUE_BYTES // 4:
        total = sum(len(p.encode()) if isinstance(p, str) else len(p) for p in (text, other))
        if total > MAX_VALUE_BYTES:
            raise CheckpointValueError(
                f"{path} is {total:,} bytes as JSON; the store keeps at most "
                f"{MAX_VALUE_BYTES:,} bytes in one checkpoint (SQLite's longest value); "
                "nothing was written"
            )
    return text


def render_json(value: Any, *, indent: bool = False) -> bytes:
    """Write a value the store holds (or a dict of them) as UTF-8 JSON for output.

    orjson, as everywhere, but it refuses nesting beyond 254 levels, which the store
    accepts (up to 500): ``list --json``, ``watch --json`` and the web view's JSON and
    diff then failed on such a checkpoint. Those fall back to the stdlib, which writes
    the same text (datetimes as ISO-8601, as orjson does).

    Args:
        value: Decoded JSON values, datetimes allowed.
        indent: Two-space indentation (orjson's ``OPT_INDENT_2``).
    """
    try:
        return _orjson_dumps(value, option=orjson.OPT_INDENT_2 if indent else None)
    except _OrjsonError as exc:
        if "Recursion limit" not in str(exc):
            raise
    text = json.dumps(
        value,
        ensure_ascii=False,
        indent=2 if indent else None,
        separators=(",", ": ") if indent else (",", ":"),
        default=_isoformat,
    )
    return text.encode()


def _isoformat(value: Any) -> str:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return str(isoformat())


def encode(value: Any, path: str) -> str:
    """:func:`encode_utf8`, as a ``str``."""
    return encode_utf8(value, path).decode()


def encode_object_utf8(value: Any, path: str, *, optional: bool = False) -> bytes:
    """Encode a dict (``data`` or ``metadata``) to UTF-8 JSON; ``None`` is ``{}`` if optional.

    The bytes are what SQLite stores as the text: binding them (cast to ``TEXT``) skips
    decoding them into a ``str`` that the driver would encode back to UTF-8 (measured
    at ~3/4 of a 1 MB create's time in Python, benchmarks/OPTIMISATIONS.md).

    Raises:
        CheckpointTypeError: ``value`` is not a dict, or holds a non-JSON value.
        CheckpointValueError: ``value`` holds NaN/Infinity or is nested too deep.
    """
    if value is None and optional:
        return b"{}"
    if type(value) is not dict:
        kind = "a dict or None" if optional else "a dict"
        raise CheckpointTypeError(f"{path} must be {kind}, not {type(value).__name__}")
    return encode_utf8(value, path)


def encode_object(value: Any, path: str, *, optional: bool = False) -> str:
    """Encode a dict (``data`` or ``metadata``); ``None`` means ``{}`` when optional.

    Raises:
        CheckpointTypeError: ``value`` is not a dict, or holds a non-JSON value.
        CheckpointValueError: ``value`` holds NaN/Infinity or is nested too deep.
    """
    return encode_object_utf8(value, path, optional=optional).decode()


def encode_parsed_object(value: Any, path: str, *, optional: bool = False) -> str:
    """:func:`encode_object` for a value a JSON parser returned, with no NaN or infinity.

    Such a value holds only JSON types with ``str`` keys, so the strict walk is skipped:
    orjson writes it exactly, or refuses what the codec refuses too (integers beyond 64
    bits, lone surrogates), or nesting beyond its 255 levels; those take the full path,
    which names the offending value or writes deep nesting with the stdlib.
    """
    if type(value) is dict:
        try:
            return check_size(_orjson_dumps(value), path).decode()
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
    if not value.isascii():
        if not _utf8_ok(value):
            raise CheckpointValueError(f"{what} contains a lone surrogate: {_shown(repr(value))}")
        size = len(value.encode())
        if size > MAX_KEY_LENGTH:
            # PostgreSQL's B-tree entries hold at most 2,704 bytes: a session id with a
            # name in the (session_id, name, seq) index must fit, as on SQLite.
            raise CheckpointValueError(
                f"{what} is {size} bytes as UTF-8; the limit is {MAX_KEY_LENGTH} bytes"
            )
    return value
