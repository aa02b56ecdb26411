"""Streaming gunzip: multi-member, bounded output, truncation is an input error."""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator

import pytest

from runtime.core.errors import InputError
from runtime.core.streams import gunzip


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def collect(it: AsyncIterator[bytes]) -> list[bytes]:
    return [c async for c in it]


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
async def test_roundtrip_any_chunking(size: int) -> None:
    data = os.urandom(50_000) + b"a,b\n" * 10_000
    assert b"".join(await collect(gunzip(chunks(gzip.compress(data), size)))) == data


async def test_concatenated_members() -> None:
    blob = gzip.compress(b"one\n") + gzip.compress(b"two\n")
    assert b"".join(await collect(gunzip(chunks(blob, 5)))) == b"one\ntwo\n"


async def test_output_pieces_are_bounded() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))
    pieces = await collect(gunzip(chunks(bomb, 1 << 20), out_chunk=1 << 16))
    assert max(len(p) for p in pieces) <= 1 << 16
    assert sum(map(len, pieces)) == 8 << 20


async def test_truncated_gzip_is_input_error() -> None:
    blob = gzip.compress(b"x" * 100_000)
    with pytest.raises(InputError, match="truncated"):
        await collect(gunzip(chunks(blob[:-20], 1000)))


async def test_corrupt_gzip_is_input_error() -> None:
    with pytest.raises(InputError, match="corrupt gzip"):
        await collect(gunzip(chunks(b"this is not gzip at all", 4)))
