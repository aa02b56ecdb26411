"""Canonicalize JSON (RFC 8785) so generated files diff cleanly.

``.json`` documents are canonicalized whole (bounded by ``MAX_DOCUMENT_BYTES``);
``.jsonl``/``.ndjson`` are canonicalized record by record, streamed in and out,
so a JSON Lines file of any size needs bounded memory. Input that is not
I-JSON (duplicate keys, integers beyond 2^53−1, invalid UTF-8…) is a permanent
error that says where, never a silently changed value.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import TypedDict

from functions.json_canonical.canonical import canonicalize, canonicalize_lines
from runtime import Context, InputError, ObjectEvent, Router, offload

router = Router()

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
"""A whole ``.json`` document must be parsed at once; beyond this it is refused."""
LINE_SUFFIXES = (".jsonl", ".ndjson")


class Canonicalized(TypedDict):
    """The function's output, stored in ``result.json``."""

    input_bytes: int
    output_bytes: int
    sha256: str
    records: int
    output: str


@router.function(bucket="job-inputs", prefix="uploads/", suffix=(".json", *LINE_SUFFIXES))
async def json_canonicalize(event: ObjectEvent, ctx: Context) -> Canonicalized:
    """Write ``canonical.json`` (or ``canonical.jsonl``) beside the result record."""
    if event.key.endswith(LINE_SUFFIXES):
        return await _lines(event, ctx)
    document = bytearray()
    async for chunk in ctx.read(event):
        document += chunk
        if len(document) > MAX_DOCUMENT_BYTES:
            raise InputError(
                f"document larger than {MAX_DOCUMENT_BYTES} bytes: use JSON Lines for large data",
                where=f"byte {MAX_DOCUMENT_BYTES}",
            )
    out = await offload(canonicalize, bytes(document))  # seconds for big ones: off the loop
    info = await ctx.write("canonical.json", out, content_type="application/json")
    return {
        "input_bytes": len(document),
        "output_bytes": len(out),
        "sha256": hashlib.sha256(out).hexdigest(),
        "records": 1,
        "output": f"s3://{info.bucket}/{info.key}",
    }


async def _lines(event: ObjectEvent, ctx: Context) -> Canonicalized:
    counts = {"in": 0, "out": 0, "records": 0}
    digest = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        async for chunk in ctx.read(event):
            counts["in"] += len(chunk)
            yield chunk

    async def canonical() -> AsyncIterator[bytes]:
        async for line in canonicalize_lines(source()):
            counts["out"] += len(line)
            counts["records"] += 1
            digest.update(line)
            yield line

    info = await ctx.write("canonical.jsonl", canonical(), content_type="application/x-ndjson")
    return {
        "input_bytes": counts["in"],
        "output_bytes": counts["out"],
        "sha256": digest.hexdigest(),
        "records": counts["records"],
        "output": f"s3://{info.bucket}/{info.key}",
    }
