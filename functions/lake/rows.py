"""Byte chunks → records with their line numbers: CSV and JSON Lines, fed incrementally.

Feed chunks split anywhere (mid-line, mid-character); each ``feed`` returns the
records completed so far as ``(line, record)`` pairs, ``line`` being the
1-based physical line where the record starts. ``finish`` returns the rest.
Memory is a chunk plus the record in progress, whatever the file's size.

CSV is parsed by the ``csv`` module, not pyarrow's streaming reader: rows are
validated one by one in Python anyway (so pyarrow's columnar speed would be
spent converting back to Python objects), rejects must carry the line a record
starts on, which pyarrow cannot report once values hold newlines, and ``csv``'s
RFC 4180 quoting is the reference the rest of the project is tested against.
One ``csv.reader`` lives for the whole file, so a quoted field may span chunks:
when it runs out of complete lines mid-record, the lines of that record are
kept and parsed again once the next chunk arrives.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable

from functions.common.lines import MAX_LINE_BYTES, too_long
from runtime import InputError

__all__ = ["CsvRows", "JsonLines"]

# A line's text has at most 4 bytes a character: a shorter one cannot be over the limit.
_SURELY_WITHIN = MAX_LINE_BYTES // 4


class _Starved(Exception):
    """The line source ran dry mid-file: more chunks will come."""


class _Text:
    """UTF-8 chunks → text cut after its last complete line end.

    It cuts text, not bytes, so that each chunk is decoded as it arrives (see
    :mod:`functions.common.lines` for why it is not the canonicalizer's splitter).
    """

    def __init__(self, cut: Callable[[str], int]) -> None:
        # utf-8-sig drops a leading byte order mark, which spreadsheet exports write.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._cut = cut
        self._offset = 0  # bytes fed so far, for error positions
        self._tail = ""  # text after the last line end

    def feed(self, chunk: bytes, *, final: bool = False) -> str:
        """Complete lines of the text so far (everything, if ``final``)."""
        held = len(self._decoder.getstate()[0])
        try:
            text = self._tail + self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            where = f"byte {self._offset - held + exc.start}"
            raise InputError(f"not UTF-8 text ({exc.reason})", where=where) from None
        self._offset += len(chunk)
        if final:
            self._tail = ""
            return text
        cut = self._cut(text)
        tail = self._tail = text[cut:]
        # The limit is in bytes: only a long tail is encoded to measure it.
        if len(tail) > _SURELY_WITHIN and len(tail.encode()) > MAX_LINE_BYTES:
            raise InputError(too_long(MAX_LINE_BYTES), where=self.where)
        return text[:cut]

    @property
    def where(self) -> str:
        """The current position, for errors."""
        return f"byte {self._offset}"


def _csv_cut(text: str) -> int:
    # A record may end at LF, CRLF or a lone CR. A CR that ends the text may be
    # the first half of a CRLF split across chunks, so it waits for the next one.
    return max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1


class _Lines:
    """The line source ``csv.reader`` pulls from; raises _Starved when empty mid-file."""

    __slots__ = ("eof", "items", "pos")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.pos = 0
        self.eof = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        pos = self.pos
        if pos < len(self.items):
            self.pos = pos + 1
            return self.items[pos]
        if self.eof:
            raise StopIteration
        raise _Starved


class CsvRows:
    """Incremental RFC 4180 CSV: yields every non-blank record, the header included.

    Malformed quoting (text after a closing quote, a quote never closed, a
    field over ``csv.field_size_limit()``) and undecodable bytes raise
    :class:`InputError` saying where: no row of such a file can be trusted.
    """

    def __init__(self) -> None:
        self._text = _Text(_csv_cut)
        self._lines = _Lines()
        # strict: "a"b is an error, not a silently merged field
        self._reader = csv.reader(self._lines, strict=True)
        self._before = 0  # physical lines before self._lines.items[0]

    def feed(self, chunk: bytes) -> list[tuple[int, list[str]]]:
        """Records completed by ``chunk``."""
        text = self._text.feed(chunk)
        if text:
            # newline="" splits at LF, CRLF and CR only (as csv expects of files),
            # never at the other characters str.splitlines() treats as line ends.
            self._lines.items.extend(io.StringIO(text, newline=""))
        return self._drain()

    def finish(self) -> list[tuple[int, list[str]]]:
        """The remaining records; the end of the data ends the last one."""
        text = self._text.feed(b"", final=True)
        if text:
            self._lines.items.extend(io.StringIO(text, newline=""))
        self._lines.eof = True
        return self._drain()

    def _drain(self) -> list[tuple[int, list[str]]]:
        lines, out = self._lines, []
        mark = lines.pos
        while True:
            mark = lines.pos
            try:
                record = next(self._reader)
            except (_Starved, StopIteration):
                break
            except csv.Error as exc:
                start = self._before + mark + 1
                if lines.eof and lines.pos >= len(lines.items):
                    raise InputError("unterminated quoted field", where=f"line {start}") from None
                line = self._before + lines.pos
                where = f"line {line}" if line == start else f"line {line} (record from {start})"
                raise InputError(f"malformed CSV: {exc}", where=where) from None
            if record:
                out.append((self._before + mark + 1, record))
        # Keep only the lines of the record in progress; it is parsed again from there.
        del lines.items[:mark]
        lines.pos = 0
        self._before += mark
        return out


class JsonLines:
    """Incremental JSON Lines: yields ``(line, text)`` for every non-blank line.

    Lines are not parsed here: a bad line is a bad row, rejected with its text,
    while undecodable bytes make the whole file unreadable (InputError).
    """

    def __init__(self) -> None:
        # A raw LF cannot occur inside a JSON value, so splitting on LF is exact.
        self._text = _Text(lambda text: text.rfind("\n") + 1)
        self._line = 0

    def feed(self, chunk: bytes) -> list[tuple[int, str]]:
        """Lines completed by ``chunk``."""
        return self._split(self._text.feed(chunk))

    def finish(self) -> list[tuple[int, str]]:
        """The last line, if the data does not end with a line end."""
        return self._split(self._text.feed(b"", final=True))

    def _split(self, text: str) -> list[tuple[int, str]]:
        if not text:
            return []
        parts = text.split("\n")
        if text.endswith("\n"):
            parts.pop()
        first = self._line + 1
        self._line += len(parts)
        return [(first + i, p) for i, p in enumerate(parts) if p and not p.isspace()]
