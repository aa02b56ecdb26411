"""S3 event records → one normalized :class:`ObjectEvent`.

Four wire shapes parse: MinIO's (``{"EventName", "Key", "Records": [...]}``),
AWS S3's (``{"Records": [...]}``, event names without the ``s3:`` prefix),
Ceph RGW's (AWS-like, ``eventSource: "ceph:s3"``, metadata as a list of
``{"key", "val"}``, an event name with or without ``s3:``, a size that may be a
string) and AWS EventBridge's (one event per message: ``detail-type``
``"Object Created"``, the object under ``detail``, its operation in
``detail.reason``). Keys arrive URL-encoded the way Go's ``url.QueryEscape``
does it (``+`` for space, ``%2F`` for ``/``) and are decoded here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from runtime.core.errors import EventError
from runtime.core.seams import ObjectInfo

Source = Literal["minio", "aws", "ceph", "listing", "other"]
"""Who told us: a store's notification, or a listing (the sweep, backfill)."""

PUT = "s3:ObjectCreated:Put"
POST = "s3:ObjectCreated:Post"
COPY = "s3:ObjectCreated:Copy"
MULTIPART = "s3:ObjectCreated:CompleteMultipartUpload"
DATA_EVENTS: frozenset[str] = frozenset({PUT, POST, COPY, MULTIPART})
"""Events that mean new object data. ``s3:ObjectCreated:*`` also fires on tagging,
retention and legal-hold changes, which must not re-run a function."""

META_PREFIX = "x-amz-meta-"

EVENTBRIDGE_REASONS: dict[str, str] = {
    "PutObject": PUT,
    "POST Object": POST,
    "CopyObject": COPY,
    "CompleteMultipartUpload": MULTIPART,
}
"""EventBridge's ``detail.reason`` of an "Object Created" event → the S3 event name."""
EVENTBRIDGE_DELETIONS: dict[str, str] = {
    "Permanently Deleted": "s3:ObjectRemoved:Delete",
    "Delete Marker Created": "s3:ObjectRemoved:DeleteMarkerCreated",
}
"""EventBridge's ``detail.deletion-type`` of an "Object Deleted" event → the S3 event name."""


class ObjectEvent(BaseModel):
    """One object-level event, whatever store emitted it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    event_name: str
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_time: datetime | None = None
    content_type: str | None = None
    metadata: dict[str, str] = {}
    source: Source = "other"

    @property
    def revision(self) -> str:
        """What identifies this content: the version id, else the etag."""
        return self.version_id or self.etag or ""

    def describes(self, version_id: str | None, etag: str | None) -> bool:
        """Whether the object now at this key (its version id / etag) is the one announced."""
        if self.version_id:
            return version_id == self.version_id
        return not self.etag or etag == self.etag


def parse(body: bytes) -> list[ObjectEvent]:
    """Parse one broker message into its object events.

    Returns an empty list for store test events (``s3:TestEvent``). Raises
    :class:`EventError` for anything that is not a bucket event.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"not JSON: {exc}", body=body) from None
    if not isinstance(doc, dict):
        raise EventError(f"expected a JSON object, got {type(doc).__name__}", body=body)
    if doc.get("Event") == "s3:TestEvent":
        return []
    if "detail-type" in doc:
        try:
            return _eventbridge(doc)
        except Exception as exc:  # noqa: BLE001 - as for records below: EventError alone
            raise EventError(f"malformed EventBridge event: {_describe(exc)}", body=body) from None
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        raise EventError("no 'Records' list in message", body=body)
    try:
        return [_record(r) for r in records]
    except Exception as exc:  # noqa: BLE001 - hostile input may break any assumption; the contract is EventError alone
        raise EventError(f"malformed record: {_describe(exc)}", body=body) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    if isinstance(exc, TypeError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _record(rec: Mapping[str, Any]) -> ObjectEvent:
    if not isinstance(rec, Mapping):
        raise TypeError("record is not an object")
    s3 = rec["s3"]
    obj = s3["object"]
    source = _source(str(rec.get("eventSource", "")))
    name = str(rec["eventName"])
    if not name.startswith("s3:"):
        name = "s3:" + name  # AWS and some Ceph versions omit the prefix
    return announced(
        name=name,
        bucket=str(s3["bucket"]["name"]),
        key=decode_key(str(obj["key"])),
        size=obj.get("size"),
        etag=obj.get("eTag") or obj.get("etag") or None,
        version=obj.get("versionId") or None,
        sequencer=obj.get("sequencer") or None,
        time=rec.get("eventTime") or None,
        content_type=obj.get("contentType") or None,
        metadata=_metadata(obj),
        source=source,
    )


def _eventbridge(doc: Mapping[str, Any]) -> list[ObjectEvent]:
    """An AWS EventBridge event: one object, no metadata, the operation in ``reason``.

    "Object Created" is sent for new data only (tags, ACLs and restores have
    detail types of their own), so an unknown ``reason`` still means new data.
    Detail types that are about no object's data yield no event, like a store's
    test event, rather than a dead letter.
    """
    kind = str(doc["detail-type"])
    if str(doc.get("source", "aws.s3")) != "aws.s3":
        raise ValueError(f"not an S3 event: source {doc.get('source')!r}")
    detail = doc["detail"]
    if kind == "Object Created":
        name = EVENTBRIDGE_REASONS.get(str(detail.get("reason", "")), PUT)
    elif kind == "Object Deleted":
        name = EVENTBRIDGE_DELETIONS.get(
            str(detail.get("deletion-type", "")), "s3:ObjectRemoved:Delete"
        )
    else:
        return []
    obj = detail["object"]
    return [
        announced(
            name=name,
            bucket=str(detail["bucket"]["name"]),
            key=decode_key(str(obj["key"])),  # URL-encoded as in S3's own notifications
            size=obj.get("size"),
            etag=obj.get("etag") or None,
            version=obj.get("version-id") or None,
            sequencer=obj.get("sequencer") or None,
            time=doc.get("time") or None,
            source="aws",
        )
    ]


def announced(
    *,
    name: str,
    bucket: str,
    key: str,
    size: Any,
    etag: Any,
    version: str | None,
    sequencer: str | None,
    time: Any,
    source: Source,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> ObjectEvent:
    """The one constructor of an event from what a store said about an object (a
    record, an EventBridge event, a listing): its id, and the etag without quotes."""
    return ObjectEvent(
        event_id=event_id(bucket, key, name, version, etag, sequencer),
        event_name=name,
        bucket=bucket,
        key=key,
        size=size,
        etag=etag.strip('"') if isinstance(etag, str) else None,
        version_id=version,
        sequencer=sequencer,
        event_time=time,
        content_type=content_type,
        metadata=dict(metadata or {}),
        source=source,
    )


def _source(event_source: str) -> Source:
    if event_source.startswith("minio"):
        return "minio"
    if event_source.startswith("aws"):
        return "aws"
    if event_source.startswith("ceph"):
        return "ceph"
    return "other"


def decode_key(raw: str) -> str:
    """Decode an event key encoded like Go's ``url.QueryEscape`` (``+`` is a space)."""
    return unquote_plus(raw, errors="strict")


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    """User metadata with the ``x-amz-meta-`` prefix removed and names lower-cased."""
    raw: Any = obj.get("userMetadata") or obj.get("metadata") or {}
    pairs: list[tuple[str, str]]
    if isinstance(raw, list):  # Ceph: [{"key": "x-amz-meta-a", "val": "b"}]
        if not all(isinstance(m, Mapping) for m in raw):
            raise TypeError("object metadata list must hold {'key', 'val'} objects")
        pairs = [(str(m.get("key", "")), str(m.get("val", ""))) for m in raw]
    elif isinstance(raw, Mapping):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    else:
        raise TypeError(f"object metadata must be an object, got {type(raw).__name__}")
    out: dict[str, str] = {}
    for name, value in pairs:
        lowered = name.lower()
        if lowered.startswith(META_PREFIX):
            out[lowered[len(META_PREFIX) :]] = value
    return out


def event_id(
    bucket: str, key: str, name: str, version: str | None, etag: str | None, seq: str | None
) -> str:
    """Stable across redeliveries of the same event, distinct for a new write of the
    same key (new etag/version/sequencer), so logs and DLQ entries can be joined."""
    parts = "\x00".join((bucket, key, name, version or "", etag or "", seq or ""))
    return hashlib.blake2b(parts.encode(), digest_size=12).hexdigest()


def listed(info: ObjectInfo) -> ObjectEvent:
    """The event a store would have sent for ``info``, found by listing and a HEAD.

    The sweep and backfill build invocations from it; no sequencer is known, so
    the worker asks the store what is current before it runs the handler.
    """
    return announced(
        name=PUT,
        bucket=info.bucket,
        key=info.key,
        size=info.size,
        etag=info.etag,
        version=info.version_id,
        sequencer=None,
        time=info.last_modified,
        metadata={k.lower(): v for k, v in (info.metadata or {}).items()},
        source="listing",
    )
