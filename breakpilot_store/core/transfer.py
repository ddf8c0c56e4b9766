r"""The seed's export format: render it (streaming) and parse its entries strictly.

An export is a JSON array of ``cp.to_dict()`` indented by 2, the seed's shape, so the
seed can import what we export and the other way round. It is written with orjson (the
stdlib's indenting encoder is pure Python, ~25x slower): the same structure, keys and
values as the seed's ``json.dumps(..., indent=2)``; non-ASCII text is written as UTF-8
rather than ``\uXXXX`` escapes, and floats in their shortest form (``1e-07`` as ``1e-7``).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from ..checkpoint import split_id
from ..codec import check_key, check_size, decode, encode_object, encode_parsed_object
from ..errors import BreakpilotStoreError, CorruptDatabaseError, ImportFormatError
from ..schema import stored_time

#: The largest seq an import may carry: half of SQLite's range, so that a session's
#: counter can never be pushed to where ``last_seq + 1`` overflows into a float.
MAX_IMPORT_SEQ = 2**62


#: Rows read, and rendered as one unit, at a time when exporting. Part of the output's
#: definition: the stdlib fallback for deep nesting applies to a whole batch (and spells
#: floats its own way), so batches must keep starting at multiples of this.
EXPORT_BATCH = 256

#: Entries decoded and rendered together within a batch. orjson's rendering of a
#: sub-batch is the same text as its part of the batch's rendering; smaller pieces keep
#: the decoded objects in the CPU cache from ``loads`` to ``dumps`` to their release:
#: measured, 64 renders a 256-row batch ~25% faster than one call over all 256.
RENDER_BATCH = 64

# A piece that another one follows is rendered with this extra last element, so that
# orjson itself writes the ",\n" between the two: the piece is then cut out of orjson's
# output as it is, with no concatenation (in the profile, the former slice and prefix
# copies cost more than orjson's rendering). The cut drops the element and "]".
_SENTINEL = 0
_SENTINEL_TAIL = len(b"  0\n]")
_EMPTY_DOCUMENT = memoryview(b"[]")

_loads = orjson.loads
_dumps = orjson.dumps
_fromisoformat = datetime.fromisoformat


def seed_timestamp(stored: Any) -> str:
    """Render a stored ``created_at`` as the seed does: ``timestamp.isoformat()``.

    The store's own SQLite text (``2026-11-24T04:47:09.123456+00:00``, fixed width) is
    already that, except when the microsecond is 0: ``isoformat()`` then omits the
    fraction. Any other text (a row written by hand) goes through ``datetime`` as the
    :class:`~breakpilot_store.checkpoint.Checkpoint` path does; so does a datetime
    (PostgreSQL, through Core). ``isoformat()`` costs ~1.4 µs, ten times the rest.

    Raises:
        CorruptDatabaseError: A value that is not a timestamp (written by hand).
    """
    if type(stored) is not str:
        return stored_time(stored).isoformat()
    try:
        parsed = _fromisoformat(stored)  # validates (e.g. no 30 February), as before
    except ValueError:
        return stored_time(stored).isoformat()  # raises, naming the value
    # Separators at 4, 7, 10, 13, 16 and 19 pin the shape; the parse checked the
    # digits. (fromisoformat also takes a space for the T, week dates, "," fractions...)
    if len(stored) == 32 and stored[4:20:3] == "--T::." and stored[26:] == "+00:00":
        return stored if stored[20:26] != "000000" else stored[:19] + "+00:00"
    return stored_time(parsed).isoformat()  # UTC, as the Checkpoint path reads it


def _entries(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Build each stored row's export entry, without the Checkpoint.

    Rows are ``(session_id, seq, name, created_at, data, metadata, origin_id)``. The
    entry is ``Checkpoint.to_dict()``, plus ``origin_id`` for a row imported from
    another session (the seed's ``from_dict`` ignores the extra key; an import
    honours it, so a copied session re-imports its sources as no-ops).
    """
    entries = _plain_entries(rows)
    for entry, row in zip(entries, rows, strict=True):
        if row[6] is not None:
            entry["origin_id"] = row[6]
    return entries


def _plain_entries(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The ``to_dict()`` part of :func:`_entries`."""
    try:
        return [
            {
                "id": f"{session_id}:{seq}",
                "name": name,
                "timestamp": seed_timestamp(stamp),
                "data": _loads(data),
                # The usual metadata; the dict is only ever rendered, never handed out.
                "metadata": {} if meta == "{}" else _loads(meta),
            }
            for session_id, seq, name, stamp, data, meta, _ in rows
        ]
    except (orjson.JSONDecodeError, CorruptDatabaseError):
        # Some text orjson refuses (hand-written NaN, say): the codec's rules, per row,
        # and a row no rule reads is named.
        return [_slow_entry(*row[:6]) for row in rows]


def _slow_entry(
    session_id: str, seq: int, name: str, stamp: Any, data: Any, meta: Any
) -> dict[str, Any]:
    try:
        return {
            "id": f"{session_id}:{seq}",
            "name": name,
            "timestamp": seed_timestamp(stamp),
            "data": decode(data),
            "metadata": decode(meta),
        }
    except CorruptDatabaseError as exc:
        raise CorruptDatabaseError(f"checkpoint '{session_id}:{seq}': {exc}") from exc.__cause__


def _cut(out: bytes, first: bool, last: bool) -> memoryview:
    """Cut a piece out of a list dump: only the first keeps its "[", only the last its "]"."""
    return memoryview(out)[0 if first else 2 : len(out) if last else len(out) - _SENTINEL_TAIL]


def _render(rows: Sequence[Sequence[Any]], first: bool, last: bool) -> list[memoryview]:
    """Render one batch of rows, indented by 2, as the pieces of the document it makes.

    ``first``/``last``: whether the batch starts or ends the document.
    """
    pieces = []
    for start in range(0, len(rows), RENDER_BATCH):
        entries = _entries(rows[start : start + RENDER_BATCH])
        final = last and start + RENDER_BATCH >= len(rows)
        if not final:
            entries.append(_SENTINEL)
        try:
            out = _dumps(entries, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError:  # nesting beyond orjson's 255 levels
            return [_cut(_stdlib_dump(_entries(rows), last), first, last)]
        pieces.append(_cut(out, first and start == 0, final))
    return pieces


def _stdlib_dump(entries: list[Any], last: bool) -> bytes:
    """Render a whole batch with the stdlib (deep nesting), as :func:`_render` cuts it."""
    if not last:
        entries.append(_SENTINEL)
    # surrogatepass: a hand-written "\\ud800" decodes to a lone surrogate, which the
    # stdlib writes as it is; the document's str keeps it, as it always did.
    return json.dumps(entries, indent=2, ensure_ascii=False).encode("utf-8", "surrogatepass")


def export_pieces(row_batches: Iterable[Sequence[Sequence[Any]]]) -> Iterator[memoryview]:
    """Yield the export document as UTF-8 pieces, a few per batch of stored rows.

    The concatenation is laid out as ``json.dumps([cp.to_dict() ...], indent=2)``, with
    orjson's spelling of scalars. Each piece is a view into an orjson rendering.

    Args:
        row_batches: Rows ``(session_id, seq, name, created_at, data, metadata)`` in seq
            order, :data:`EXPORT_BATCH` to a batch except the last (as
            :func:`~breakpilot_store.core.repository.iter_row_batches` reads them). One batch
            is read ahead, to know whether the current one is the last.
    """
    batches = iter(row_batches)
    rows = next(batches, None)
    if rows is None:
        yield _EMPTY_DOCUMENT
        return
    first = True
    for following in batches:
        yield from _render(rows, first, last=False)
        rows, first = following, False
    yield from _render(rows, first, last=True)


def text_chunk(piece: memoryview) -> str:
    """Decode a piece of :func:`export_pieces` (see :func:`_stdlib_dump` on surrogatepass)."""
    return str(piece, "utf-8", "surrogatepass")


#: Bytes of UTF-8 gathered before ``export_chunks`` decodes them into one str.
TEXT_CHUNK = 256 * 1024


def text_pieces(pieces: Iterable[memoryview]) -> Iterator[str]:
    """Decode an export's UTF-8 pieces into str pieces of about :data:`TEXT_CHUNK` bytes."""
    # Decoded a batch's worth at a time: decoding every small piece on its own let
    # glibc's heap fragment, measured as a peak RSS that grew with the session (+12 MiB
    # at 10,000 checkpoints, +17 MiB at 100,000).
    pending = bytearray()
    for piece in pieces:
        pending += piece
        if len(pending) >= TEXT_CHUNK:
            yield text_chunk(memoryview(pending))
            pending = bytearray()
    if pending:
        yield text_chunk(memoryview(pending))


def reporting(
    batches: Iterable[Sequence[Any]], on_batch: Callable[[int], object]
) -> Iterator[Sequence[Any]]:
    """Pass batches through, calling ``on_batch`` with each one's size (progress)."""
    for batch in batches:
        on_batch(len(batch))
        yield batch


@dataclass(slots=True)
class ImportEntry:
    """One validated element of an import document.

    Attributes:
        id: The id as written in the document.
        session_id: The session part of ``id``.
        seq: The seq part of ``id``.
        name: The checkpoint's name.
        timestamp: Its creation time (aware, UTC).
        data_text: ``data`` as the codec encodes it (what is stored).
        metadata_text: ``metadata`` as the codec encodes it.
        origin_id: The id it was first imported from, if the document says so.
    """

    id: str
    session_id: str
    seq: int
    name: str
    timestamp: datetime
    data_text: str
    metadata_text: str
    origin_id: str | None = None

    @property
    def origin(self) -> str:
        """The id that identifies this checkpoint across sessions (its first id)."""
        return self.origin_id or self.id

    def same_as(self, row: Any) -> bool:
        """Compare with a stored row ``(session_id, seq, name, created_at, data, meta)``.

        Identical means same name, same instant to the microsecond, equal data and
        metadata.
        """
        return (
            row[2] == self.name
            and row[3] == self.timestamp
            and decode(row[4]) == decode(self.data_text)
            and decode(row[5]) == decode(self.metadata_text)
        )


def _where(index: int, raw_id: str) -> str:
    """How messages name an entry whose id is known."""
    return f"entry {index} ({raw_id!r})"


def parse_timestamp(value: Any, index: int, raw_id: str) -> datetime:
    """Parse entry ``index``'s ISO-8601 timestamp (with a zone); return it in UTC.

    Raises:
        ImportFormatError: Not a string, not ISO-8601, or without a zone.
    """
    if not isinstance(value, str):
        raise ImportFormatError(
            f"{_where(index, raw_id)}: timestamp must be a string, not {type(value).__name__}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ImportFormatError(
            f"{_where(index, raw_id)}: timestamp {value!r} is not ISO-8601"
        ) from exc
    if parsed.tzinfo is timezone.utc:  # what exports write: nothing to convert
        return parsed
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ImportFormatError(
            f"{_where(index, raw_id)}: timestamp {value!r} has no time zone; write it with "
            "an offset such as +00:00"
        )
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ImportFormatError(
            f"{_where(index, raw_id)}: timestamp {value!r} is out of range in UTC"
        ) from exc


_REQUIRED = ("id", "name", "timestamp", "data")


def parse_entry(entry: Any, index: int, *, parsed: bool = False) -> ImportEntry:
    """Validate one element of an import document.

    Args:
        entry: The element, normally a dict.
        index: Its position in the document (for messages).
        parsed: The element is a plain entry of a :class:`Document` (JSON values, none
            of them NaN or infinite), so ``data`` and ``metadata`` skip the strict walk.

    Raises:
        ImportFormatError: Naming the entry's index and what is wrong with it.
    """
    # This runs once per imported checkpoint: messages are only built on failure.
    if not isinstance(entry, Mapping):
        raise ImportFormatError(f"entry {index}: must be an object, not {type(entry).__name__}")
    try:
        raw_id = entry["id"]
        name = entry["name"]
        stamp = entry["timestamp"]
        data = entry["data"]
    except KeyError:
        missing = next(key for key in _REQUIRED if key not in entry)
        raise ImportFormatError(f"entry {index}: missing field {missing!r}") from None
    if not isinstance(raw_id, str):
        raise ImportFormatError(f"entry {index}: id must be a string, not {type(raw_id).__name__}")
    parts = split_id(raw_id)
    if parts is None:
        raise ImportFormatError(
            f"entry {index}: id {raw_id!r} is not of the form 'session:seq' with seq >= 1"
        )
    if parts[1] > MAX_IMPORT_SEQ:
        raise ImportFormatError(
            f"{_where(index, raw_id)}: seq {parts[1]} is too large (the limit is "
            f"{MAX_IMPORT_SEQ}, which leaves room for the session's later checkpoints)"
        )
    encoder = encode_parsed_object if parsed else encode_object
    try:
        session_id = check_key(parts[0], "the session part of the id")
        name = check_key(name, "name")
        data_text = encoder(data, "data")
        metadata_text = encoder(entry.get("metadata", {}), "metadata", optional=True)
        check_size(data_text, "data with metadata", metadata_text)
    except BreakpilotStoreError as exc:
        raise ImportFormatError(f"{_where(index, raw_id)}: {exc}") from exc
    origin = entry.get("origin_id")
    if origin is not None:
        origin = _origin(origin, index, raw_id)
    return ImportEntry(
        raw_id,
        session_id,
        parts[1],
        name,
        parse_timestamp(stamp, index, raw_id),
        data_text,
        metadata_text,
        origin,
    )


def _origin(value: Any, index: int, raw_id: str) -> str:
    """Check an entry's ``origin_id``: an id of the form ``session:seq``.

    Raises:
        ImportFormatError: Naming the entry.
    """
    parts = split_id(value) if isinstance(value, str) else None
    if parts is None:
        raise ImportFormatError(
            f"{_where(index, raw_id)}: origin_id {value!r:.80} is not an id 'session:seq'"
        )
    try:
        check_key(parts[0], "the session part of origin_id")
    except BreakpilotStoreError as exc:
        raise ImportFormatError(f"{_where(index, raw_id)}: {exc}") from exc
    return value


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around work on a large acyclic structure.

    A parse allocates millions of containers, and every few thousand allocations the
    collector traverses everything built so far: measured, ~25% of the parse and of
    the import that follows, for a 100,000-entry document. A parsed document has no
    cycles, so there is nothing to collect; whatever else becomes garbage meanwhile is
    collected when the collector resumes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
