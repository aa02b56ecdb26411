"""A long read never holds up a writer: ranged GETs pinned to the revision, on MinIO.

One streamed GET holds MinIO's per-object lock for as long as it streams, so a
user's overwrite of the key waited for the whole read. Reading in bounded
ranges lets the overwrite in between two ranges; the read, pinned to the etag
it started with, notices at its next range and ends as superseded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime.adapters.s3 import MAX_RANGE, RANGE_SIZE, S3Storage
from runtime.core.errors import Superseded
from runtime.core.settings import Settings
from tests.servers import require_minio, s3_client

MIB = 1 << 20
SIZE = 6 * RANGE_SIZE  # six ranges
PAUSE = 0.1  # seconds per MiB read: a reader slower than the store, ~5 s in all


@pytest.fixture(scope="module")
async def storage(settings: Settings) -> AsyncIterator[S3Storage]:
    require_minio(s3_client(settings))
    async with S3Storage.connect(settings) as s:
        yield s


async def test_an_overwrite_during_a_slow_read_completes_promptly(
    storage: S3Storage, settings: Settings
) -> None:
    key = f"it/{uuid.uuid4().hex}/slow-read.bin"
    client = s3_client(settings)
    first = await storage.put("job-inputs", key, b"a" * SIZE)
    overwrite: asyncio.Task[float] | None = None

    def put_newer() -> float:
        t0 = time.monotonic()
        client.put_object(Bucket="job-inputs", Key=key, Body=b"b" * MIB)
        return time.monotonic() - t0

    async def slow_read() -> tuple[int, bool]:
        nonlocal overwrite
        read = 0
        try:
            async for chunk in storage.stream("job-inputs", key, etag=first.etag, chunk_size=MIB):
                assert chunk == b"a" * len(chunk)  # never a byte of the newer revision
                read += len(chunk)
                if overwrite is None:
                    overwrite = asyncio.create_task(asyncio.to_thread(put_newer))
                await asyncio.sleep(PAUSE)
        except Superseded:
            return read, True
        return read, False

    t0 = time.monotonic()
    read, superseded = await slow_read()
    elapsed = time.monotonic() - t0
    assert overwrite is not None
    waited = await overwrite
    print(f"overwrite waited {waited:.3f} s; read {read / MIB:.0f} MiB in {elapsed:.2f} s")
    # The writer waited at most for the range being read, not for the whole read…
    assert waited < 0.5 * (SIZE // MIB) * PAUSE, (waited, elapsed)
    # …and the read ended as superseded at the range after the overwrite.
    assert superseded
    assert read < SIZE, read


async def test_ranged_reads_return_every_byte_and_empty_objects(storage: S3Storage) -> None:
    key = f"it/{uuid.uuid4().hex}/ranges.bin"
    body = bytes(range(256)) * ((RANGE_SIZE * 2 + 12345) // 256)
    info = await storage.put("job-inputs", key, body)
    got = b"".join([c async for c in storage.stream("job-inputs", key, chunk_size=MIB)])
    assert got == body
    pinned = [c async for c in storage.stream("job-inputs", key, etag=info.etag)]
    assert b"".join(pinned) == body
    await storage.put("job-inputs", f"{key}.empty", b"")
    assert [c async for c in storage.stream("job-inputs", f"{key}.empty")] == []


async def test_a_fast_reader_takes_longer_ranges(storage: S3Storage) -> None:
    # 8 MiB ranges cost a fast reader ~40% of a single GET's speed in per-request
    # overhead; the range grows to what the reader reads in HOLD seconds instead.
    key = f"it/{uuid.uuid4().hex}/fast.bin"
    body = bytes(range(256)) * (100 * MIB // 256)  # 100 MiB
    await storage.put("job-inputs", key, body)
    ranges: list[str] = []
    real = storage._s3.get_object

    async def counted(**kw: Any) -> Any:
        ranges.append(kw["Range"])
        return await real(**kw)

    storage._s3.get_object = counted  # type: ignore[method-assign]
    try:
        got = b"".join([c async for c in storage.stream("job-inputs", key, chunk_size=MIB)])
    finally:
        del storage._s3.get_object  # back to the client's own method
    assert got == body
    assert ranges[0] == f"bytes=0-{RANGE_SIZE - 1}"
    assert len(ranges) < (100 * MIB) // RANGE_SIZE, ranges  # fewer than 8 MiB ranges would take
    spans = [int(b) - int(a) + 1 for a, b in (r.removeprefix("bytes=").split("-") for r in ranges)]
    assert max(spans) <= MAX_RANGE
