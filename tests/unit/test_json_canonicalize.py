"""json_canonicalize on the in-memory harness: outputs, records, errors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rfc8785

from functions.json_canonical import canonicalize as module
from functions.json_canonical.canonicalize import json_canonicalize
from runtime import InputError
from runtime.testing import Harness

DOC: Any = {"b": [1.0, 1e21, 0.000001, -0.0], "a": {"€": "x", "\U0001f600": 2, "\ufb33": 3}}


async def test_document_is_written_byte_exact_beside_the_record() -> None:
    h = Harness()
    raw = json.dumps(DOC, indent=2, ensure_ascii=True).encode()
    result = await h.run(json_canonicalize, raw, key="uploads/doc.json")
    expected = rfc8785.dumps(DOC)
    written = h.storage.objects[
        ("job-outputs", "json_canonicalize/uploads/doc.json/canonical.json")
    ]
    assert written.data == expected
    assert result.output == {
        "input_bytes": len(raw),
        "output_bytes": len(expected),
        "sha256": hashlib.sha256(expected).hexdigest(),
        "records": 1,
        "output": "s3://job-outputs/json_canonicalize/uploads/doc.json/canonical.json",
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
async def test_json_lines_record_by_record(suffix: str) -> None:
    h = Harness()
    records: list[Any] = [DOC, {"z": 1, "y": [True, None]}, "just a string"]
    raw = b"\n".join(json.dumps(r).encode() for r in records) + b"\n\n"
    result = await h.run(json_canonicalize, raw, key=f"uploads/d{suffix}")
    out = h.storage.objects[("job-outputs", f"json_canonicalize/uploads/d{suffix}/canonical.jsonl")]
    assert out.data == b"".join(rfc8785.dumps(r) + b"\n" for r in records)
    assert result.output["records"] == 3


async def test_duplicate_keys_are_a_located_input_error() -> None:
    with pytest.raises(InputError) as info:
        await Harness().run(json_canonicalize, b'{"a": {"k": 1, "k": 2}}', key="uploads/d.json")
    assert "/a" in str(info.value)


async def test_bad_line_names_its_line() -> None:
    raw = b'{"ok": 1}\n{"n": 9007199254740993}\n'
    with pytest.raises(InputError) as info:
        await Harness().run(json_canonicalize, raw, key="uploads/d.jsonl")
    assert "line 2" in str(info.value)


async def test_oversized_document_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(InputError, match="larger than 100 bytes"):
        await Harness().run(json_canonicalize, b"[" + b"1," * 100 + b"1]", key="uploads/d.json")
