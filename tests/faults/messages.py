"""The hostile corpus's broker messages: ingress garbage and function-queue garbage.

Published straight to the ingress queue (or a function's own queue), each with a
token inside its body so its dead letter is found whatever id it is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

import orjson

from runtime import MIB


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """A message published straight to a queue, and the reason its dead letter must give.

    ``token`` is inside the body, so its letter is found whatever id it is given.
    ``key`` is set for a well-formed event naming an object that is not there:
    without a ``reason`` the worker must drop it (logged ``superseded``); with
    one, ``csv_row_count`` must dead-letter it with that reason in its error.
    """

    what: str
    body: bytes
    token: str
    queue: str = "ingress"  # or a function's name: its own queue
    reason: str = ""
    key: str = ""


def _event(
    key: str,
    *,
    token: str,
    meta: object = None,
    seq: str | None = "0000000000000001",
    name: str = "s3:ObjectCreated:Put",
    size: object = 3,
) -> dict[str, object]:
    obj: dict[str, object] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": "0" * 32}
    if seq is not None:
        obj["sequencer"] = seq
    if meta is not None:
        obj["userMetadata"] = meta
    record = {
        "eventName": name,
        "eventSource": "minio:s3",
        "s3": {"bucket": {"name": "job-inputs"}, "object": obj},
    }
    return {"EventName": name, "Key": f"job-inputs/{key}", "Records": [record], "probe": token}


def _dropped(key: str, seq: str | None, token: str) -> bytes:
    """A well-formed event for ``key``, with or without a sequencer."""
    return orjson.dumps(_event(key, token=token, seq=seq))


def _two(event: dict[str, object]) -> bytes:
    """``event`` with a second record that is not a record at all."""
    records = event["Records"]
    assert isinstance(records, list)
    return orjson.dumps({**event, "Records": [*records, 5]})


Make = Callable[[str], bytes]
"""Builds a message body around its token."""


def messages(p: str) -> list[Probe]:
    """Ingress garbage and function-queue garbage, each carrying a unique token."""
    out: list[Probe] = []

    def add(what: str, make: Make, reason: str, *, queue: str = "ingress", key: str = "") -> None:
        token = f"probe-{p}-{len(out):03d}"
        out.append(
            Probe(
                what=what,
                body=make(token),
                token=token,
                queue=queue,
                reason=reason,
                key=key,
            )
        )

    def js(doc: dict[str, object]) -> Make:
        return lambda t: orjson.dumps({**doc, "probe": t})

    add("plain text", lambda t: f"hello {t}".encode(), "not JSON")
    add("empty-ish", lambda t: f" {t}".encode(), "not JSON")
    add("binary", lambda t: bytes(range(256)) + t.encode() + b"\xff\xfe", "not JSON")
    add("NUL bytes", lambda t: b"\x00" * 64 + t.encode(), "not JSON")
    add("BOM JSON", lambda t: b"\xef\xbb\xbf" + orjson.dumps({"Records": [], "p": t}), "not JSON")
    add(
        "invalid UTF-8 in JSON",
        lambda t: b'{"Records": "\xff", "p": "' + t.encode() + b'"}',
        "not JSON",
    )
    add("JSON array", lambda t: orjson.dumps([t]), "expected a JSON object")
    add("JSON string", lambda t: orjson.dumps(t), "expected a JSON object")
    add("JSON number", lambda t: f'[1, "{t}"]'.encode(), "expected a JSON object")
    add("no Records", js({}), "Records")
    add("empty Records", js({"Records": []}), "Records")
    add("Records a string", js({"Records": "x"}), "Records")
    add("Records of numbers", js({"Records": [1, 2]}), "malformed record")
    add("record {}", js({"Records": [{}]}), "malformed record")
    add(
        "record without s3",
        js({"Records": [{"eventName": "s3:ObjectCreated:Put"}]}),
        "malformed record",
    )
    add(
        "object without key",
        js({"Records": [{"eventName": "x", "s3": {"bucket": {"name": "b"}, "object": {}}}]}),
        "malformed record",
    )
    add(
        "bucket a list",
        js({"Records": [{"eventName": "x", "s3": {"bucket": [], "object": {"key": "k"}}}]}),
        "malformed record",
    )
    add(
        "userMetadata a list",
        lambda t: orjson.dumps(_event(f"uploads/{p}/m.csv", token=t, meta=[1, 2])),
        "malformed record",
    )
    add(
        "userMetadata a string",
        lambda t: orjson.dumps(_event(f"uploads/{p}/m.csv", token=t, meta="x")),
        "malformed record",
    )
    add(
        "userMetadata a number",
        lambda t: orjson.dumps(_event(f"uploads/{p}/m.csv", token=t, meta=7)),
        "malformed record",
    )
    add(
        "size not a number",
        lambda t: orjson.dumps(_event(f"uploads/{p}/m.csv", token=t, size="big")),
        "malformed record",
    )
    add(
        "bad percent escape",
        lambda t: orjson.dumps(_event(f"uploads/{p}/x.csv", token=t)).replace(
            b"x.csv", b"%ff%fe.csv"
        ),
        "malformed record",
    )
    add(
        "eventTime garbage",
        lambda t: orjson.dumps(_event(f"uploads/{p}/m.csv", token=t)).replace(
            b'"eventSource"', b'"eventTime":"yesterday","eventSource"'
        ),
        "malformed record",
    )
    add(
        "one good, one bad record",
        lambda t: _two(_event(f"uploads/{p}/m.csv", token=t)),
        "malformed record",
    )
    add("deep JSON", lambda t: b"[" * 100_000 + t.encode(), "not JSON")
    add(
        "duplicate Records key",
        lambda t: b'{"Records": [{}], "Records": 5, "p": "' + t.encode() + b'"}',
        "Records",
    )
    add("huge text body (8 MiB)", lambda t: t.encode() + b"x" * (8 * MIB), "not JSON")
    add("huge binary body (16 MiB)", lambda t: t.encode() + b"\xff" * (16 * MIB), "not JSON")
    # Well-formed events for objects that are not there. A key MinIO cannot even
    # name (`..`, `.`, empty segments) is refused by its GET or HEAD: a dead letter
    # (after the policy's retries: S3 answers 400, which is not mapped as permanent).
    # A plain missing key is dropped as superseded.
    forged = (
        (f"uploads/{p}/../escape.csv", "0000000000000001", "XMinioInvalidResourceName"),
        (f"uploads/{p}/./dot.csv", None, "400"),
        (f"uploads/{p}//double.csv", "0000000000000001", "XMinioInvalidObjectName"),
        (f"uploads/{p}/missing.csv", None, ""),
        (f"uploads/{p}/missing-seq.csv", "0000000000000001", ""),
        (f"uploads/{p}/forged.csv", "F" * 16, ""),
    )
    for key, seq, reason in forged:
        what = f"event for a missing object {key.rsplit('/', 2)[-2:]}, sequencer {seq}"
        add(what, functools.partial(_dropped, key, seq), reason, key=key)
    # An ingress message whose dead letter, re-wrapped as base64, would exceed the
    # broker's 128 MiB maximum (defect 6): it must still end as one bounded letter.
    add("oversized binary body (100 MiB)", lambda t: t.encode() + b"\xff" * (100 * MIB), "not JSON")
    # Not invocations, on a function's own queue.
    for what, make in (
        ("text", lambda t: f"garbage {t}".encode()),
        ("empty object", js({})),
        ("attempt a string", js({"function": "csv_row_count", "event": {}, "attempt": "x"})),
        ("binary", lambda t: b"\x00\xff" + t.encode()),
    ):
        add(f"function queue: {what}", make, "undecodable", queue="csv_row_count")
    return out
