"""The header record of a CSV stream: gathered across chunks, then parsed with :mod:`csv`.

:class:`Header` takes the first chunks of the stream until the LF that ends the
header record, outside quotes. On the way it skips a UTF-8 BOM at the very start
and blank lines (LF or CRLF alone) before the header, and caps the header's size.
Only about the header is ever copied; the rest of the chunk is the body's.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from functions.csv_count.error import CsvFormatError

__all__ = ["Header"]

_BOM = b"\xef\xbb\xbf"
_HEADER_STEP = 64 << 10


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


def _parse(raw: bytes, offset: int) -> tuple[str, ...]:
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


@dataclass(slots=True, eq=False)
class Header:
    """The header record in progress: its pending bytes and where they start in the stream.

    The search for its LF is resumable: bytes already scanned are not scanned again.
    """

    _head: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _offset: int = field(default=0, init=False, repr=False)
    _bom_checked: bool = field(default=False, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _scanned: int = field(default=0, init=False, repr=False)
    _quoted: bool = field(default=False, init=False, repr=False)
    # Where the quoted field in progress opened, for the error if it never closes.
    _open_at: int = field(default=-1, init=False, repr=False)

    def take(self, chunk: bytes, limit: int) -> tuple[tuple[str, ...], int] | None:
        """Take header bytes from ``chunk``: the header fields and where the body begins
        in ``chunk``, or None while the header goes on past it.

        The chunk goes in by slices so that only about the header is ever copied.
        Raises :class:`CsvFormatError` when the header record passes ``limit`` bytes
        (its CR included), or does not decode or parse.
        """
        for start in range(0, len(chunk), _HEADER_STEP):
            piece = chunk[start : start + _HEADER_STEP]
            end = self._end(piece, limit)
            if end >= 0:
                head = self._head
                # Everything after the LF arrived with this piece.
                begin = start + len(piece) - (len(head) - end - 1)
                columns = _parse(bytes(head[:end]), self._offset)
                self._head = bytearray()
                return columns, begin
        return None

    def final(self) -> tuple[str, ...]:
        """Fields of a stream that ended inside its header record (or before it)."""
        head = self._head
        if not head or (self._bom_checked and not self._started):
            return ()  # nothing, or only blank lines (a lone CR at the end is blank too)
        if self._quoted:
            raise CsvFormatError("unterminated quoted field at end of data", offset=self._open_at)
        return _parse(bytes(head), self._offset)

    def _end(self, piece: bytes, limit: int) -> int:
        """Append ``piece`` to the header buffer; the index of the header's LF, or -1."""
        head = self._head
        head += piece
        if not self._bom_checked:
            if len(head) < len(_BOM) and _BOM.startswith(head):
                return -1
            self._bom_checked = True
            if head.startswith(_BOM):
                del head[: len(_BOM)]
                self._offset += len(_BOM)
        if not self._started:
            skip = _blank_prefix(head)
            if skip:
                del head[:skip]
                self._offset += skip
            if not head or head == b"\r":
                return -1
            self._started = True
        end = self._find_end()
        if end < 0 and len(head) <= limit:
            return -1
        if end < 0 or end > limit:
            raise CsvFormatError(
                f"header too long (over {limit} bytes)", offset=self._offset + limit
            )
        return end

    def _find_end(self) -> int:
        """Index in the buffer of the LF ending the header record, or -1; resumable."""
        head = self._head
        pos = self._scanned
        end = len(head)
        while pos < end:
            quote = head.find(b'"', pos)
            if self._quoted:  # inside quotes: only a quote matters
                if quote < 0:
                    break
                self._quoted = False
            else:
                lf = head.find(b"\n", pos, quote if quote >= 0 else end)
                if lf >= 0:
                    return lf
                if quote < 0:
                    break
                self._quoted = True
                if quote == 0 or head[quote - 1] != 0x22:  # not the second half of ""
                    self._open_at = self._offset + quote
            pos = quote + 1
        self._scanned = end
        return -1
