"""Streamed S3 I/O on a real MinIO: bounded memory both ways, pinned reads."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import pytest

from runtime.adapters.s3 import S3Storage
from runtime.core.errors import ObjectGone, Superseded
from runtime.core.settings import Settings
from tests.servers import require_minio, s3_client

MIB = 1 << 20


async def blocks(n: int, seed: bytes) -> AsyncIterator[bytes]:
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    for _ in range(n // MIB):
        yield block


@pytest.fixture(scope="module")
async def storage(settings: Settings) -> AsyncIterator[S3Storage]:
    require_minio(s3_client(settings))
    async with S3Storage.connect(settings) as s:
        yield s


async def _round_trip_peaks(storage: S3Storage, size: int) -> tuple[int, int]:
    """Write ``size`` bytes as a stream, read them back; the traced peaks of each."""
    key = f"it/{uuid.uuid4().hex}/big.bin"
    tracemalloc.start()
    try:
        info = await storage.put("job-inputs", key, blocks(size, b"x"))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest, total = hashlib.sha256(), 0
        async for chunk in storage.stream("job-inputs", key, etag=info.etag, chunk_size=MIB):
            digest.update(chunk)
            total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256()
    async for b in blocks(size, b"x"):
        expected.update(b)
    assert total == size
    assert digest.hexdigest() == expected.hexdigest()
    return write_peak, read_peak


async def test_streamed_write_and_read_stay_bounded(storage: S3Storage) -> None:
    small_write, small_read = await _round_trip_peaks(storage, 24 * MIB)
    big_write, big_read = await _round_trip_peaks(storage, 120 * MIB)
    # Five times the data, the same memory: a few 8 MiB parts / 1 MiB chunks at a time.
    assert big_write < small_write + 8 * MIB, (small_write, big_write)
    assert big_read < small_read + 4 * MIB, (small_read, big_read)
    assert big_write < 48 * MIB
    assert big_read < 16 * MIB


async def test_read_pinned_to_an_old_etag_is_superseded(storage: S3Storage) -> None:
    key = f"it/{uuid.uuid4().hex}/v.txt"
    old = await storage.put("job-inputs", key, b"one")
    await storage.put("job-inputs", key, b"two")
    with pytest.raises(Superseded):
        async for _ in storage.stream("job-inputs", key, etag=old.etag):
            pass


async def test_missing_object_is_gone(storage: S3Storage) -> None:
    assert await storage.head("job-inputs", f"it/{uuid.uuid4().hex}") is None
    with pytest.raises(ObjectGone):
        async for _ in storage.stream("job-inputs", f"it/{uuid.uuid4().hex}"):
            pass


async def test_a_conditional_write_lands_only_over_what_it_names(storage: S3Storage) -> None:
    key = f"it/{uuid.uuid4().hex}/result.json"
    first = await storage.put("job-outputs", key, b"one", if_absent=True)
    with pytest.raises(Superseded):
        await storage.put("job-outputs", key, b"again", if_absent=True)
    second = await storage.put("job-outputs", key, b"two", if_match=first.etag)
    with pytest.raises(Superseded):
        await storage.put("job-outputs", key, b"stale", if_match=first.etag)
    held = await storage.head("job-outputs", key)
    assert held is not None and held.etag == second.etag
    body = b"".join([c async for c in storage.stream("job-outputs", key)])
    assert body == b"two"
    # If-Match on a key that is gone is a 404, not a 412 (the record writer handles both).
    await storage.delete("job-outputs", key)
    with pytest.raises(ObjectGone):
        await storage.put("job-outputs", key, b"three", if_match=second.etag)
    assert await storage.head("job-outputs", key) is None


async def test_a_conditional_write_is_not_held_up_by_readers_polling_the_key(
    storage: S3Storage,
) -> None:
    # A user polls result.json while the runtime writes it: each write must land
    # while GETs of that very key keep coming (MinIO takes the object's lock for a
    # conditional PUT), not wait for the polling to stop.
    key = f"it/{uuid.uuid4().hex}/result.json"
    held = await storage.put("job-outputs", key, b"0", if_absent=True)
    stop = asyncio.Event()

    async def poll() -> int:
        reads = 0
        while not stop.is_set():
            async for _ in storage.stream("job-outputs", key):
                pass
            reads += 1
        return reads

    pollers = [asyncio.create_task(poll()) for _ in range(4)]
    try:
        for i in range(1, 21):
            held = await asyncio.wait_for(
                storage.put("job-outputs", key, str(i).encode(), if_match=held.etag), 5
            )
    finally:
        stop.set()
        reads = await asyncio.gather(*pollers)
    assert min(reads) > 0, reads  # the key was being read throughout
    body = b"".join([c async for c in storage.stream("job-outputs", key)])
    assert body == b"20"
