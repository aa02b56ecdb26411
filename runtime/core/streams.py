"""Stream helpers: decompress and re-cut without holding an object.

Everything here takes and returns async iterators of ``bytes`` so a 2 GB
object costs a few chunks of memory. The S3 adapter cuts multipart parts with
:func:`rechunk`; functions use it and :func:`gunzip` through ``runtime``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator

from runtime.core.errors import InputError

MIB = 1024 * 1024
"""One mebibyte: the unit of every buffer size in bucketfn."""
GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not raw deflate or zlib


async def gunzip(chunks: AsyncIterable[bytes], *, out_chunk: int = MIB) -> AsyncIterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream.

    Output is produced in pieces of at most ``out_chunk`` bytes, so a small,
    highly compressed input cannot balloon memory. A truncated or corrupt
    stream raises :class:`InputError` — retrying cannot fix the bytes.
    """
    d = zlib.decompressobj(GZIP_WBITS)
    consumed = 0  # input bytes before the current chunk, for error positions
    in_member = False
    async for chunk in chunks:
        data = chunk
        while data:
            in_member = True
            try:
                out = d.decompress(data, out_chunk)
            except zlib.error as exc:
                raise InputError(f"corrupt gzip: {exc}", where=f"near byte {consumed}") from None
            if out:
                yield out
            if d.eof:
                # Another gzip member may follow (as `cat a.gz b.gz` makes).
                data = d.unused_data
                d = zlib.decompressobj(GZIP_WBITS)
                in_member = bool(data)
            else:
                data = d.unconsumed_tail
        consumed += len(chunk)
    tail = d.flush()
    if tail:
        yield tail
    if in_member and not d.eof:
        raise InputError("truncated gzip: the stream ends inside a member")


async def rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Re-cut a stream into pieces of exactly ``size`` bytes (the last may be short)."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            with memoryview(buf) as view:
                piece = bytes(view[:size])  # one copy, not a bytearray slice and a copy
            del buf[:size]
            yield piece
    if buf:
        yield bytes(buf)
