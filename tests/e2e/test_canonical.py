"""json_canonicalize on the real stack: byte-exact RFC 8785 for .json and .jsonl."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import rfc8785

from runtime.core.names import output_prefix, result_key
from tests.e2e.conftest import Stack
from tests.servers import unique, wait_for_object

DOCS: list[Any] = [
    {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 1e-27, -0.0, 100.0],
        "literals": [None, True],
    },
    {"€": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "ö": 7},
    {"nested": {"z": [{"b": 1, "a": 2}], "a": "line\nbreak \u000f"}},
]


async def canonical_file(stack: Stack, key: str, name: str) -> bytes:
    result = await wait_for_object(stack.s3, "job-outputs", result_key("json_canonicalize", key))
    assert result["status"] == "ok", result.get("error")
    obj = stack.s3.get_object(
        Bucket="job-outputs", Key=output_prefix("json_canonicalize", key) + name
    )
    body: bytes = obj["Body"].read()
    assert result["output"]["sha256"] and result["output"]["output_bytes"] == len(body)
    return body


async def test_json_document_canonicalized_byte_exactly(stack: Stack) -> None:
    key = f"uploads/{unique()}/doc.json"
    doc: Any = {"records": DOCS, "count": 3}
    raw = json.dumps(doc, indent=4, ensure_ascii=False).encode()
    await asyncio.to_thread(stack.s3.put_object, Bucket="job-inputs", Key=key, Body=raw)
    assert await canonical_file(stack, key, "canonical.json") == rfc8785.dumps(doc)


async def test_json_lines_canonicalized_byte_exactly(stack: Stack) -> None:
    key = f"uploads/{unique()}/events.jsonl"
    raw = b"\n".join(json.dumps(d, indent=None).encode() for d in DOCS) + b"\n"
    await asyncio.to_thread(stack.s3.put_object, Bucket="job-inputs", Key=key, Body=raw)
    expected = b"".join(rfc8785.dumps(d) + b"\n" for d in DOCS)
    assert await canonical_file(stack, key, "canonical.jsonl") == expected


async def test_non_i_json_input_is_dead_lettered_with_where(stack: Stack) -> None:
    key = f"uploads/{unique()}/dup.json"
    await asyncio.to_thread(
        stack.s3.put_object, Bucket="job-inputs", Key=key, Body=b'{"a": 1, "a": 2}'
    )
    result = await wait_for_object(stack.s3, "job-outputs", result_key("json_canonicalize", key))
    assert result["status"] == "dead-lettered"
    assert result["attempts"] == 1
    assert "duplicate" in result["error"]["message"].lower()
