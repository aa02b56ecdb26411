"""Count the records of a CSV stream fed in chunks, quote-aware, without a CSV parser.

:class:`RecordCounter` takes ``bytes`` chunks split anywhere and returns a
:class:`CsvCount`: the header fields, parsed with :mod:`csv`, and the number of
non-blank records after the header, as ``csv.reader`` would count them on RFC 4180
input. State kept between chunks is a handful of integers, plus the header
record's bytes while it is still arriving (capped by ``max_header_bytes``).

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
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from runtime import InputError

__all__ = ["CsvCount", "CsvFormatError", "RecordCounter"]

_BOM = b"\xef\xbb\xbf"
_HEADER_STEP = 64 << 10
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


class CsvFormatError(InputError):
    """The stream is not CSV we can count: unterminated quote, bad or oversized header.

    ``reason`` says what is wrong; ``offset`` is the 0-based byte offset in the raw
    stream (BOM included) where it is: the opening quote that never closes, the
    first undecodable header byte, or where the header passed its size cap.
    A subclass of :class:`runtime.core.errors.InputError` (hence a ``ValueError``):
    the content is malformed, so retrying cannot help.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason, where=f"byte {offset}")
        self.offset = offset

    def __reduce__(self) -> tuple[type[CsvFormatError], tuple[str, int]]:
        # ``args`` holds the formatted message only; rebuild from the fields.
        return type(self), (self.reason, self.offset)


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


def _blank_prefix(buf: bytearray) -> int:
    """How many bytes at the start of ``buf`` are whole blank lines (LF or CRLF)."""
    run = len(buf) - len(buf.lstrip(b"\r\n"))
    if b"\r" not in buf[:run].replace(b"\r\n", b""):
        return run
    # A lone CR is data, or may be the first half of a CRLF still to come.
    i = 0
    while i < run:
        if buf[i] == 0x0A:
            i += 1
        elif i + 1 < run and buf[i + 1] == 0x0A:
            i += 2
        else:
            break
    return i


def _parse_header(raw: bytes, offset: int) -> tuple[str, ...]:
    """Decode and parse the header record found at stream ``offset`` (CR of CRLF and all)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvFormatError("header is not valid UTF-8", offset=offset + exc.start) from exc
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CsvFormatError(f"header does not parse as CSV: {exc}", offset=offset) from exc
    if len(records) != 1 or not records[0]:
        # csv ends records at a bare CR and reads a mid-field quote literally,
        # so it saw other record boundaries than the quote-parity scan did.
        raise CsvFormatError(
            "header is not one RFC 4180 record (bare CR or stray quote?)", offset=offset
        )
    return tuple(records[0])


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

    _total: int = field(default=0, init=False, repr=False)
    _error: CsvFormatError | None = field(default=None, init=False, repr=False)
    # Header phase: the pending header bytes and where they start in the stream.
    _header_done: bool = field(default=False, init=False, repr=False)
    _head: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _head_offset: int = field(default=0, init=False, repr=False)
    _bom_checked: bool = field(default=False, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _scanned: int = field(default=0, init=False, repr=False)
    _head_quoted: bool = field(default=False, init=False, repr=False)
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
            if not self._header_done:
                begin = self._feed_header(chunk)
                if begin < 0:
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
        if not self._header_done:
            return CsvCount(rows=0, columns=self._final_header(), bytes=self._total)
        if self._in_quotes:
            raise CsvFormatError("unterminated quoted field at end of data", offset=self._open_at)
        rows = self._rows + (self._record == _TEXT)
        return CsvCount(rows=rows, columns=self._columns, bytes=self._total)

    def _feed_header(self, chunk: bytes) -> int:
        """Take header bytes from ``chunk``; return where the body begins in it, or -1.

        The chunk goes in by slices so that only about the header is ever copied.
        """
        for start in range(0, len(chunk), _HEADER_STEP):
            piece = chunk[start : start + _HEADER_STEP]
            end = self._header_end(piece)
            if end >= 0:
                head = self._head
                # Everything after the LF arrived with this piece.
                begin = start + len(piece) - (len(head) - end - 1)
                self._columns = _parse_header(bytes(head[:end]), self._head_offset)
                self._head = bytearray()
                self._header_done = True
                return begin
        return -1

    def _header_end(self, piece: bytes) -> int:
        """Append ``piece`` to the header buffer; the index of the header's LF, or -1."""
        head = self._head
        head += piece
        if not self._bom_checked:
            if len(head) < len(_BOM) and _BOM.startswith(head):
                return -1
            self._bom_checked = True
            if head.startswith(_BOM):
                del head[: len(_BOM)]
                self._head_offset += len(_BOM)
        if not self._started:
            skip = _blank_prefix(head)
            if skip:
                del head[:skip]
                self._head_offset += skip
            if not head or head == b"\r":
                return -1
            self._started = True
        end = self._find_header_end()
        if end < 0 and len(head) <= self.max_header_bytes:
            return -1
        if end < 0 or end > self.max_header_bytes:
            raise CsvFormatError(
                f"header too long (over {self.max_header_bytes} bytes)",
                offset=self._head_offset + self.max_header_bytes,
            )
        return end

    def _find_header_end(self) -> int:
        """Index in the buffer of the LF ending the header record, or -1; resumable."""
        head = self._head
        pos = self._scanned
        end = len(head)
        while pos < end:
            quote = head.find(b'"', pos)
            if self._head_quoted:  # inside quotes: only a quote matters
                if quote < 0:
                    break
                self._head_quoted = False
            else:
                lf = head.find(b"\n", pos, quote if quote >= 0 else end)
                if lf >= 0:
                    return lf
                if quote < 0:
                    break
                self._head_quoted = True
                if quote == 0 or head[quote - 1] != 0x22:  # not the second half of ""
                    self._open_at = self._head_offset + quote
            pos = quote + 1
        self._scanned = end
        return -1

    def _final_header(self) -> tuple[str, ...]:
        """Columns of a stream that ended inside its header record (or before it)."""
        head = self._head
        if not head or (self._bom_checked and not self._started):
            return ()  # nothing, or only blank lines (a lone CR at the end is blank too)
        if self._head_quoted:
            raise CsvFormatError("unterminated quoted field at end of data", offset=self._open_at)
        return _parse_header(bytes(head), self._head_offset)

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
