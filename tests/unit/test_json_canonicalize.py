"""json_canonicalize: outputs, records, errors — on either stack.

In memory by default; ``BUCKETFN_TEST_STACK=real`` runs the same tests on real
MinIO and RabbitMQ (``runtime.testing.open_stack``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import rfc8785

from functions.json_canonical import canonicalize as module
from functions.json_canonical.canonicalize import json_canonicalize
from runtime import InputError
from runtime.core.names import output_prefix
from runtime.testing import Stack, open_stack

DOC: Any = {"b": [1.0, 1e21, 0.000001, -0.0], "a": {"€": "x", "\U0001f600": 2, "\ufb33": 3}}


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with open_stack(json_canonicalize) as opened:
        yield opened


async def test_document_is_written_byte_exact_beside_the_record(stack: Stack) -> None:
    key = stack.key("uploads/", "doc.json")
    raw = json.dumps(DOC, indent=2, ensure_ascii=True).encode()
    result = await stack.run(json_canonicalize, raw, key=key)
    expected = rfc8785.dumps(DOC)
    written = output_prefix("json_canonicalize", key) + "canonical.json"
    assert await stack.read(stack.output_bucket, written) == expected
    assert result.output == {
        "input_bytes": len(raw),
        "output_bytes": len(expected),
        "sha256": hashlib.sha256(expected).hexdigest(),
        "records": 1,
        "output": f"s3://{stack.output_bucket}/{written}",
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
async def test_json_lines_record_by_record(stack: Stack, suffix: str) -> None:
    key = stack.key("uploads/", f"d{suffix}")
    records: list[Any] = [DOC, {"z": 1, "y": [True, None]}, "just a string"]
    raw = b"\n".join(json.dumps(r).encode() for r in records) + b"\n\n"
    result = await stack.run(json_canonicalize, raw, key=key)
    out = await stack.read(
        stack.output_bucket, output_prefix("json_canonicalize", key) + "canonical.jsonl"
    )
    assert out == b"".join(rfc8785.dumps(r) + b"\n" for r in records)
    assert result.output["records"] == 3


async def test_duplicate_keys_are_a_located_input_error(stack: Stack) -> None:
    key = stack.key("uploads/", "d.json")
    with pytest.raises(InputError) as info:
        await stack.run(json_canonicalize, b'{"a": {"k": 1, "k": 2}}', key=key)
    assert "/a" in str(info.value)


async def test_bad_line_names_its_line(stack: Stack) -> None:
    raw = b'{"ok": 1}\n{"n": 9007199254740993}\n'
    with pytest.raises(InputError) as info:
        await stack.run(json_canonicalize, raw, key=stack.key("uploads/", "d.jsonl"))
    assert "line 2" in str(info.value)


async def test_oversized_document_is_refused(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real stack runs its workers in this process, so the patch reaches them too.
    monkeypatch.setattr(module, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(InputError, match="larger than 100 bytes"):
        await stack.run(
            json_canonicalize, b"[" + b"1," * 100 + b"1]", key=stack.key("uploads/", "d.json")
        )
