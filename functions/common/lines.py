"""The one limit on a line of line-oriented input (CSV, JSON Lines), and how it is worded.

Two incremental splitters apply it: the lake's reader of raw files
(``functions.lake.rows``) and the JSON Lines canonicalizer
(``functions.json_canonical.canonical``). They share this limit and its message,
not a splitter class, because they cut different things: the lake decodes each
chunk as it arrives and cuts the decoded text (``csv.reader`` takes ``str``; an
undecodable byte then fails the feed that brings it, before any CSV error on a
later line), at LF, CRLF or a lone CR for CSV; the canonicalizer cuts raw bytes
at LF and hands orjson each line straight from the chunk. One bytes-level
splitter would make the lake decode only once a line is complete, which changes
which error a bad file reports.
"""

from __future__ import annotations

from runtime import MIB

__all__ = ["MAX_LINE_BYTES", "too_long"]

MAX_LINE_BYTES = 16 * MIB
"""Longest line accepted, in bytes of UTF-8.

A line is held whole until its end arrives, so this bounds memory per stream to
one line plus one chunk; a file without line ends is not CSV or JSON Lines.
Real records are kilobytes: 16 MiB leaves room for a fat one (an embedded
document) while a worker running a few streams at once stays well within memory.
Bytes, not characters, since memory is what the limit protects.
"""


def too_long(limit: int) -> str:
    """The reason given for a line longer than ``limit`` bytes."""
    return f"line longer than {limit} bytes"
