"""Temporary files between the object store and pyarrow, so no object is held in memory.

Parquet is written to a spool and uploaded as a stream once complete — the
upload is one PUT or one multipart completion, so readers never see half a
file — and Parquet is read back from a spool, because its footer sits at the
end and a reader needs to seek. Small spools stay in memory; big ones roll to disk.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO

__all__ = ["MEMORY", "UPLOAD_CHUNK", "chunks", "download", "spool"]

MEMORY = 16 * 1024 * 1024
"""Bytes a spool keeps in memory before it rolls over to a file on disk."""

UPLOAD_CHUNK = 8 * 1024 * 1024
"""Read size when uploading a spool: one multipart part of the S3 storage."""


def spool() -> IO[bytes]:
    """A binary temporary file, in memory until it outgrows :data:`MEMORY`."""
    return tempfile.SpooledTemporaryFile(max_size=MEMORY)


async def chunks(file: IO[bytes], size: int = UPLOAD_CHUNK) -> AsyncIterator[bytes]:
    """``file`` from its start, in chunks; reads run off the event loop (disk may be slow)."""
    await asyncio.to_thread(file.seek, 0)
    while chunk := await asyncio.to_thread(file.read, size):
        yield chunk


async def download(source: AsyncIterable[bytes], *, into: IO[bytes]) -> IO[bytes]:
    """Write a stream (e.g. ``ctx.read_object(...)``) into ``into``, rewound."""
    async for chunk in source:
        await asyncio.to_thread(into.write, chunk)
    into.seek(0)
    return into
