"""An export document (a JSON array) read one entry at a time, from a str or a stream.

An import reads its document as it writes it (see :mod:`breakpilot_store.core.pipeline`):
entry ``k`` is inserted while entry ``k + n`` is parsed, and only a few batches of
parsed entries are in memory, whatever the document's size. Entries are parsed with the
stdlib's C scanner (``JSONDecoder.raw_decode``), which reads any integer exactly and is
~1.5x faster than a streaming parser such as ijson; this module only walks the array
around them: whitespace, commas and the brackets.

From a stream, the text is read ``CHUNK`` bytes at a time into a window that holds the
entry being parsed. An entry cut by the window's end fails to parse near that end (or
as an unterminated string); the window then grows and the entry is parsed again. (So a
broken document whose string never ends, with no newline to stop it either, is read to
its end before it is refused.)
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import ImportFormatError

#: Bytes read from a stream at a time.
CHUNK = 256 * 1024

#: Whitespace between JSON tokens (RFC 8259's four characters).
_WHITESPACE = re.compile(r"[ \t\n\r]*")

#: A parse error this close to the window's end, or an entry that ends this close to it,
#: may be the window's doing: the longest token that can be cut without the scanner
#: saying "unterminated" (``-Infinity``, an escape ``\uXXXX``, a number's "e-") is shorter.
_CUT_MARGIN = 16


class Document:
    """An export document, read one entry at a time (:func:`parse_document`, :func:`read_document`).

    Iterating it yields the entries; an import takes :meth:`entries` instead, which also
    says whether each entry may skip the strict walk. A syntax error after the first
    entries is raised when iteration reaches it, as :class:`ImportFormatError`; an import
    then writes nothing (all or nothing). A document from a stream can be read once.
    """

    __slots__ = ("_text", "_stream")

    def __init__(self, text: str = "", stream: BinaryIO | None = None) -> None:
        """Read ``text``, or the UTF-8 bytes of ``stream`` (from where it stands)."""
        self._text = text
        self._stream = stream

    def __iter__(self) -> Iterator[Any]:
        return (entry for entry, _ in self.entries())

    def entries(self) -> Iterator[tuple[Any, bool]]:
        """Yield ``(entry, plain)`` in document order.

        ``plain`` is true when no number in the entry is NaN or infinite (``NaN``,
        ``Infinity``, or a literal such as ``1e400`` that overflows): the stdlib reads
        those as floats that orjson would write as ``null``, so only a plain entry may
        skip the strict walk (``parse_entry(..., parsed=True)``); any other value a
        JSON parser returns, ``encode_parsed_object`` refuses by itself if it must.

        Raises:
            ImportFormatError: The text is not (or stops being) a JSON array, or a
                stream's bytes are not UTF-8.
        """
        flagged = False

        def constant(literal: str) -> float:
            nonlocal flagged
            flagged = True
            return float(literal)

        def checked_float(literal: str) -> float:
            nonlocal flagged
            value = float(literal)
            if value - value != 0.0:
                flagged = True
            return value

        decode_at = json.JSONDecoder(parse_float=checked_float, parse_constant=constant).raw_decode
        skip = _WHITESPACE.match
        window = _Window(self._text, self._stream)
        begun = False  # the "[" was read: from there on, an early end is a cut-off document
        try:
            at = window.token(0)
            if not window.text.startswith("[", at):
                raise ImportFormatError("import document must be a JSON array of checkpoints")
            begun = True
            at = window.token(at + 1)
            if window.text.startswith("]", at):
                window.end(at + 1)
                return
            while True:
                text = window.text
                try:
                    entry, end = decode_at(text, at)
                except json.JSONDecodeError as exc:
                    if window.eof or not _maybe_cut(exc, len(text)):
                        raise
                    at = window.grow(at)
                    flagged = False
                    continue
                if len(text) - end < _CUT_MARGIN and not window.eof:
                    # A number may go on in the next piece ("1" of "1.5", "0." cut
                    # after its valid "0"): read on, and parse the entry again.
                    at = window.grow(at)
                    flagged = False
                    continue
                yield entry, not flagged
                flagged = False
                at = skip(text, end).end()
                if at == len(text):
                    at = window.token(at)
                    text = window.text
                if text.startswith(",", at):
                    at = skip(text, at + 1).end()
                    if at == len(text):
                        at = window.token(at)
                elif text.startswith("]", at):
                    window.end(at + 1)
                    return
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        except json.JSONDecodeError as exc:
            if begun and _ends_early(exc, window):
                if not window.text.strip(" \t\r\n") and not window._dropped:
                    raise ImportFormatError(
                        "import document is not valid JSON: it is empty"
                    ) from exc
                inside = "a string" if exc.msg.startswith("Unterminated string") else "an entry"
                raise ImportFormatError(
                    "import document is not valid JSON: it ends early, at "
                    f"{window.where(len(window.text))}, cut off inside {inside} or before "
                    "its closing ']' (a truncated file or an interrupted transfer?)"
                ) from exc
            where = f"{exc.msg}: {window.where(exc.pos)}"
            raise ImportFormatError(f"import document is not valid JSON: {where}") from exc
        except RecursionError as exc:
            raise ImportFormatError(f"import document is not valid JSON: {exc}") from exc


def _ends_early(exc: json.JSONDecodeError, window: _Window) -> bool:
    """Whether the parse failed because the whole document ended (truncated), not on a typo.

    The scanner then stops at the very end (only whitespace after where it failed), or
    in a string that runs to the end.
    """
    if not window.eof:
        return False
    if exc.msg.startswith("Unterminated string"):
        return True
    return not window.text[exc.pos :].strip(" \t\r\n")


def _maybe_cut(exc: json.JSONDecodeError, length: int) -> bool:
    """Whether a parse error may only mean that the window ends inside the entry."""
    return exc.msg.startswith("Unterminated string") or exc.pos >= length - _CUT_MARGIN


class _Window:
    """The document's text around the entry being parsed: all of it, or a stream's piece."""

    __slots__ = ("text", "eof", "_stream", "_decoder", "_dropped", "_column", "_lines")

    def __init__(self, text: str, stream: BinaryIO | None) -> None:
        self.text = text
        self.eof = stream is None
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        # To name a position in the whole document: the characters dropped from the
        # window's front, the characters since the last newline among them, and the
        # newlines read so far (counted in the bytes: ~10x faster than in the str).
        self._dropped = self._column = self._lines = 0
        if stream is not None:
            self._read(CHUNK)

    def _read(self, size: int) -> None:
        """Append up to ``size`` more bytes of the stream, decoded."""
        piece = self._stream.read(size)  # type: ignore[union-attr]
        self._lines += piece.count(b"\n")
        try:
            self.text += self._decoder.decode(piece, final=not piece)
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"import document is not UTF-8: {exc}") from exc
        self.eof = not piece

    def grow(self, keep: int) -> int:
        """Drop the text before ``keep``, read at least as much again; return where it is.

        Reading as much again as is kept makes an entry of any size cost linear time.
        """
        newline = self.text.rfind("\n", 0, keep)
        self._column = keep - newline - 1 if newline >= 0 else self._column + keep
        self._dropped += keep
        self.text = self.text[keep:]
        self._read(max(CHUNK, len(self.text)))
        return 0

    def where(self, at: int) -> str:
        """Name position ``at`` of the window in the whole document, as ``json`` does."""
        newline = self.text.rfind("\n", 0, at)
        column = at - newline if newline >= 0 else self._column + at + 1
        if self._stream is None:  # the whole text
            line = self.text.count("\n", 0, at) + 1
        else:  # the newlines read so far, less those at or after ``at``
            line = self._lines - self.text.count("\n", at) + 1
        return f"line {line} column {column} (char {self._dropped + at})"

    def token(self, at: int) -> int:
        """Skip whitespace from ``at``, reading on if it reaches the end; return where."""
        at = _WHITESPACE.match(self.text, at).end()
        while at == len(self.text) and not self.eof:
            start = self.grow(at)  # (before reading self.text: it replaces it)
            at = _WHITESPACE.match(self.text, start).end()
        if at == len(self.text):
            raise json.JSONDecodeError("Expecting value", self.text, at)
        return at

    def end(self, at: int) -> None:
        """Nothing but whitespace may follow the closing bracket, to the stream's end."""
        while True:
            at = _WHITESPACE.match(self.text, at).end()
            if at != len(self.text):
                raise json.JSONDecodeError("Extra data", self.text, at)
            if self.eof:
                return
            at = self.grow(at)


def parse_document(json_data: Any) -> Document:
    """Check that ``json_data`` is text that starts a JSON array; return its entries.

    Entries are parsed as the returned :class:`Document` is read (an import reads it
    as it writes); a syntax error further on is raised then, as ImportFormatError.

    Raises:
        ImportFormatError: Not text (or bytes that are not UTF-8), or not a JSON array.
    """
    if isinstance(json_data, (bytes, bytearray)):
        try:
            json_data = json_data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"import document is not UTF-8: {exc}") from exc
    if not isinstance(json_data, str):
        raise ImportFormatError(
            f"import document must be a JSON string, not {type(json_data).__name__}"
        )
    if not json_data.startswith("[", _WHITESPACE.match(json_data).end()):
        # Not an array: the whole parse says what it is instead (a short error path).
        try:
            document = json.loads(json_data)
        except (ValueError, RecursionError) as exc:
            raise ImportFormatError(f"import document is not valid JSON: {exc}") from exc
        raise ImportFormatError(
            f"import document must be a JSON array of checkpoints, not {type(document).__name__}"
        )
    return Document(json_data)


def read_document(stream: BinaryIO) -> Document:
    """The export document in ``stream`` (UTF-8 bytes), to be read once, in pieces.

    Memory stays at a piece of :data:`CHUNK` bytes plus the entry being read, whatever
    the document's size. Nothing is read until the document is.
    """
    return Document(stream=stream)
