"""Count the records of a CSV stream fed in chunks, quote-aware, without a CSV parser.

:class:`RecordCounter` takes ``bytes`` chunks split anywhere and returns a
:class:`CsvCount`: the header fields, parsed with :mod:`csv`, and the number of
non-blank records after the header, as ``csv.reader`` would count them on RFC 4180
input. State kept between chunks is a handful of integers, plus the header
record's bytes while it is still arriving (capped by ``max_header_bytes``), which
:class:`~functions.csv_count.header.Header` gathers and parses.

How it stays fast: per chunk, ``split(b'"')`` makes pieces that alternate
outside/inside quotes (an escaped ``""`` yields an empty outside piece, which is
harmless); the outside pieces are re-joined with ``"`` so that no two of them fuse
into one line, nor a line holding a quoted field look blank. The LFs in that text,
counted with ``bytes.count``, end records. Blank lines, which are rare, are looked
for with one regex search; only a chunk where it finds one counts them, with a
second regex from there on. All of it runs inside C ``bytes``/``re``/``list``
methods; there is no per-byte Python loop. Splitting the text on LF answers both
questions in one pass but allocates an object per line: in isolation about as dear
as the count and the search together at ~60-byte lines, dearer at shorter ones
(~30% at 2-byte lines), and end to end slower and more erratic (the bench gave
0.50-0.77 GB/s over runs with it, 0.68-0.75 without). It is kept for chunks dense
with blank lines, where it is the cheaper way to count them. The regex beats
``b"\\n\\n" in text`` plus ``b"\\n\\r\\n" in text``: LF is too frequent for the
substring search to skip ahead. The quote split itself, about half the time on
quoted data, cannot be replaced by counting quotes: an even count says nothing
about where the LFs sit (``"a\\nb"`` holds one inside quotes, and no ``"\\n`` or
``\\n"``).

Input outside RFC 4180, and what happens to it:

- A quote inside an unquoted field (``ab"c``) toggles the quoted state, like
  any other quote (quote parity). ``csv`` reads it as a literal character, so
  counts can differ; a header where that matters is rejected (see below).
- A lone CR outside quotes is field data, not a record terminator (``csv``
  ends a record there). A lone CR as the whole last line of the file is blank.

The native core. All of the above is the reference: where the C extension
``functions.csv_count._scan`` built (``setup.py``; optional, so an install without a
compiler still works), the body after the header goes to it instead, with the very
same semantics at ~20x the speed (10-18 GB/s here): AVX2 quote masks and a prefix
XOR, simdjson's technique, where the CPU has AVX2, a portable 64-bit version
elsewhere, chosen at run time. It needs no scan window, copies nothing and releases
the GIL, so a scan in a worker thread leaves the event loop free. The header is
always parsed here, in Python: it is one record. ``BUCKETFN_NATIVE_SCAN=0`` in the
environment (read at import) makes :class:`RecordCounter` the reference, which
:class:`ReferenceRecordCounter` always is; tests/unit/test_native_scan.py holds the
two against each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from functions.csv_count.error import CsvFormatError
from functions.csv_count.header import Header

__all__ = ["NATIVE", "NATIVE_BUILT", "CsvCount", "RecordCounter", "ReferenceRecordCounter"]

_NativeScan = Callable[
    [bytes | memoryview, int, bool, int, bool, int], tuple[int, bool, int, bool, int]
]


try:
    from functions.csv_count._scan import scan as _c_scan
except ImportError:  # built without a C compiler: the pure-Python reference only
    _NATIVE_SCAN: _NativeScan | None = None
else:
    _NATIVE_SCAN = _c_scan
NATIVE_BUILT = _NATIVE_SCAN is not None
"""Whether the C core is importable here."""
NATIVE = NATIVE_BUILT and os.environ.get("BUCKETFN_NATIVE_SCAN", "1") != "0"
"""Whether counters scan with the C core by default: built, and not turned off by
``BUCKETFN_NATIVE_SCAN=0``."""

_WINDOW = 1 << 20
"""Bigger chunks are scanned in slices of this size: the quote split's pieces, and the
lines or matches of a chunk with blank lines, cost up to ~8x its bytes (dense quotes,
short or blank lines), so this bounds transient memory whatever is fed. Chunks up to
this size, as streams deliver them, are scanned as they are, without a copy."""

# What the record in progress holds so far, outside quotes. A record is blank
# when it ends while still _EMPTY or _CR (CRLF alone).
_EMPTY, _CR, _TEXT = 0, 1, 2
_INNER_BLANK = re.compile(rb"\n\r?\n")
"""A blank line with an LF on both sides, i.e. neither the first nor the unfinished last."""
_BLANKISH = (b"", b"\r")
_BLANK_AFTER = re.compile(rb"\n(?=\r?\n)")
"""The LF before each such line: one match per line, however many follow each other.
A little slower than ``_INNER_BLANK`` to find the first, so used only after it."""
_SAMPLE = 16 << 10
"""Bytes after the first blank line sampled to tell a few blank lines from many."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvCount:
    """The result of counting a CSV stream."""

    rows: int
    """Non-blank records after the header record."""
    columns: tuple[str, ...]
    """The header fields; empty when the stream holds no non-blank record."""
    bytes: int
    """Total raw bytes fed, BOM included."""


def _extend(state: int, tail: bytes) -> int:
    """The record state after ``tail`` (which holds no LF) is appended to it."""
    if not tail:
        return state
    if state == _EMPTY and tail == b"\r":
        return _CR
    return _TEXT


def _tail_state(text: bytes, start: int) -> int:
    """The record state after the unfinished last line ``text[start:]``, without copying it."""
    rest = len(text) - start
    if rest == 0:
        return _EMPTY
    if rest == 1 and text[start] == 0x0D:
        return _CR
    return _TEXT


def _dense(text: bytes, start: int) -> bool:
    """Whether blank lines are so many from ``start`` on that a line list is cheaper.

    One regex match per blank line is cheapest while they are few; from about one
    in 128 bytes on (measured break-even: one in ~150-200), splitting into lines
    costs less. A sample decides; the lookahead may miss a blank line at its edge,
    which only sways the estimate.
    """
    return len(_BLANK_AFTER.findall(text, start, start + _SAMPLE)) > _SAMPLE >> 7


@dataclass(slots=True, kw_only=True, eq=False)
class RecordCounter:
    """Feed bytes chunks of a CSV stream; get the header fields and the count of data records.

    RFC 4180 quoting; LF or CRLF record ends; a UTF-8 BOM at the very start is
    skipped; blank records (LF or CRLF alone) are not counted, before the header
    or after it; the last record needs no terminator. Results do not depend on
    where chunks are split.
    """

    max_header_bytes: int = 1 << 20
    """Cap on the header record's length, its CR included; longer raises CsvFormatError."""
    native: ClassVar[bool] = NATIVE
    """Whether the body is scanned by the C core: :data:`NATIVE`. A subclass that says
    True where the core did not build fails to construct."""

    _total: int = field(default=0, init=False, repr=False)
    _error: CsvFormatError | None = field(default=None, init=False, repr=False)
    # Header phase, until the header record is complete; then None.
    _header: Header | None = field(default_factory=Header, init=False, repr=False)
    _columns: tuple[str, ...] = field(default=(), init=False, repr=False)
    # Body phase.
    _in_quotes: bool = field(default=False, init=False, repr=False)
    _record: int = field(default=_EMPTY, init=False, repr=False)
    _rows: int = field(default=0, init=False, repr=False)
    # Where the quoted field in progress opened, for the error if it never closes,
    # and whether the byte before the next chunk is a quote (a "" split in two).
    _open_at: int = field(default=-1, init=False, repr=False)
    _after_quote: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1:
            raise ValueError("max_header_bytes must be positive")
        if self.native and _NATIVE_SCAN is None:
            raise ValueError("the native scanner (functions.csv_count._scan) is not built")

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Count the records in ``chunk``, the next bytes of the stream.

        Raises :class:`CsvFormatError` as soon as the header is known to be bad
        (too long, not UTF-8, not one CSV record); the counter then stays failed
        and every later ``feed`` or ``finish`` raises the same error.
        """
        if self._error is not None:
            raise self._error
        if type(chunk) is not bytes:
            # A memoryview's ``in`` tests items, not substrings: normalise first.
            chunk = bytes(chunk)
        offset = self._total
        self._total = offset + len(chunk)
        try:
            begin = 0
            if self._header is not None:
                found = self._header.take(chunk, self.max_header_bytes)
                if found is None:
                    return
                self._columns, begin = found
                self._header = None
            if self.native:
                self._scan_native(
                    chunk if begin == 0 else memoryview(chunk)[begin:], offset + begin
                )
                return
            if begin == 0 and len(chunk) <= _WINDOW:
                self._scan(chunk, offset)
                return
            for i in range(begin, len(chunk), _WINDOW):
                self._scan(chunk[i : i + _WINDOW], offset + i)
        except CsvFormatError as exc:
            self._error = exc
            raise

    def finish(self) -> CsvCount:
        """Return the count for everything fed; the stream has ended.

        Raises :class:`CsvFormatError` on a quoted field still open at the end,
        or a header that does not decode or parse. Does not change the counter.
        """
        if self._error is not None:
            raise self._error
        if self._header is not None:
            return CsvCount(rows=0, columns=self._header.final(), bytes=self._total)
        if self._in_quotes:
            raise CsvFormatError("unterminated quoted field at end of data", offset=self._open_at)
        rows = self._rows + (self._record == _TEXT)
        return CsvCount(rows=rows, columns=self._columns, bytes=self._total)

    def _scan_native(self, data: bytes | memoryview, offset: int) -> None:
        """Count the records that end in ``data`` (body, after the header) with the C core."""
        assert _NATIVE_SCAN is not None  # __post_init__ made sure
        rows, self._in_quotes, self._record, self._after_quote, self._open_at = _NATIVE_SCAN(
            data, offset, self._in_quotes, self._record, self._after_quote, self._open_at
        )
        self._rows += rows

    def _scan(self, chunk: bytes, offset: int) -> None:
        """Count the records that end in ``chunk`` (body, after the header)."""
        if not chunk:
            return
        # Inside quotes _record is _TEXT, so it also fits a chunk that opens in quotes.
        lead = self._record
        if b'"' in chunk:
            text = self._outside(chunk, offset)
        elif self._in_quotes:
            self._after_quote = False
            return
        else:
            text = chunk
        self._after_quote = chunk.endswith(b'"')
        hit = _INNER_BLANK.search(text)
        if hit is not None and _dense(text, hit.start()):
            state = self._count_lines(text, lead)
        else:
            ends = text.count(b"\n")
            if not ends:
                state = _extend(lead, text)
            else:
                # The first line continues the previous chunk's record: judge it
                # by state, not by its text alone (it is blank only if it is at
                # most a CR). The last is unfinished, judged by the next chunk.
                # Those in between are blank where the regex matched.
                first = text.find(b"\n")
                blanks = int(first < 2 and _extend(lead, text[:first]) != _TEXT)
                if hit is not None:  # rare: count them from the first one on
                    blanks += len(_BLANK_AFTER.findall(text, hit.start()))
                self._rows += ends - blanks
                state = _tail_state(text, text.rfind(b"\n") + 1)
        self._record = _TEXT if self._in_quotes else state

    def _count_lines(self, text: bytes, lead: int) -> int:
        """Count the records ending in ``text`` (two LFs or more) from its line list.

        Return the state of the record left unfinished.
        """
        lines = text.split(b"\n")
        last = len(lines) - 1
        first = lines[0]
        tail = lines[last]
        blanks = lines.count(b"")
        if b"\r" in text:
            blanks += lines.count(b"\r")
        # The first line continues the previous chunk's record and the last
        # is unfinished: judge those two by state, not by their text alone.
        if first in _BLANKISH:
            blanks -= 1
        if tail in _BLANKISH:
            blanks -= 1
        if _extend(lead, first) != _TEXT:
            blanks += 1
        self._rows += last - blanks
        return _extend(_EMPTY, tail)

    def _outside(self, chunk: bytes, offset: int) -> bytes:
        """The parts of ``chunk`` outside quotes, joined by ``"``; tracks the quote state.

        The joining quote keeps two outside parts from fusing into one line, and
        keeps a line holding a quoted field from looking blank.
        """
        pieces = chunk.split(b'"')
        text = b'"'.join(pieces[1::2] if self._in_quotes else pieces[0::2])
        if not len(pieces) & 1:
            self._in_quotes = not self._in_quotes
        if self._in_quotes:
            self._note_opening(chunk, chunk.rfind(b'"'), offset)
        elif chunk.endswith(b'"'):
            # The next chunk may begin with the other half of a "" escape, which
            # would reopen this field: know where it opened.
            self._note_opening(chunk, chunk.rfind(b'"', 0, len(chunk) - 1), offset)
        return text

    def _note_opening(self, chunk: bytes, pos: int, offset: int) -> None:
        """Record where the field whose (re)opening quote is at ``pos`` really opened.

        A quote right before an opening quote closed the same field: the pair is
        an escaped ``""``, so the field opened further back. ``pos`` < 0 means an
        earlier chunk, and ``_open_at`` already says where.
        """
        while pos > 0 and chunk[pos - 1] == 0x22:
            pos = chunk.rfind(b'"', 0, pos - 1)
        if pos > 0 or (pos == 0 and not self._after_quote):
            self._open_at = offset + pos


class ReferenceRecordCounter(RecordCounter):
    """A :class:`RecordCounter` that always scans with the pure-Python reference."""

    __slots__ = ()
    native = False
