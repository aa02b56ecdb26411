"""In-memory stand-ins for the two seams: object storage and confirmed publishing."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from runtime.core.errors import ObjectGone, Superseded
from runtime.core.seams import Body, ObjectInfo
from runtime.core.streams import MIB


@dataclass(slots=True)
class _Object:
    data: bytes
    etag: str
    version_id: str | None
    content_type: str
    metadata: dict[str, str]
    modified: datetime


def precondition(what: str, held: str | None, if_match: str | None, *, if_absent: bool) -> None:
    """Refuse a conditional write as S3 does; ``held`` is the object's etag (None: absent).

    If-Match on a missing object is a 404 (ObjectGone), a mismatch a 412 (Superseded).
    """
    if if_match is not None and held is None:
        raise ObjectGone(f"{what}: NoSuchKey")
    if held is not None and (if_absent or (if_match is not None and held != if_match)):
        raise Superseded(f"{what}: PreconditionFailed")


class MemoryStorage:
    """A :class:`~runtime.core.seams.Storage` in a dict, with etags and optional versions."""

    def __init__(self, versioned: frozenset[str] = frozenset()) -> None:
        self.objects: dict[tuple[str, str], _Object] = {}
        # Versioned buckets keep every version readable by its id, as S3 does.
        self.versions: dict[tuple[str, str, str], _Object] = {}
        self.versioned = versioned
        self._versions = itertools.count(1)
        # Each write's Last-Modified; tests that reason about ages replace it.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Store ``data`` synchronously (test setup)."""
        version = f"v{next(self._versions)}" if bucket in self.versioned else None
        obj = _Object(
            data=data,
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            version_id=version,
            content_type="application/octet-stream",
            metadata=dict(metadata or {}),
            modified=self.clock(),
        )
        self.objects[(bucket, key)] = obj
        if version is not None:
            self.versions[(bucket, key, version)] = obj
        return ObjectInfo(bucket=bucket, key=key, etag=obj.etag, version_id=version, size=len(data))

    async def stream(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        etag: str | None = None,
        chunk_size: int = MIB,
    ) -> AsyncIterator[bytes]:
        """Yield the object in chunks; Superseded if it changed since the event."""
        current = self.objects.get((bucket, key))
        # A version stays readable by its id after newer writes and deletes, as in S3.
        obj = self.versions.get((bucket, key, version_id)) if version_id else current
        if obj is None and version_id and current is not None:
            raise Superseded(f"GET {bucket}/{key}: object changed since the event")
        if obj is None:
            raise ObjectGone(f"GET {bucket}/{key}: NoSuchKey")
        if not version_id and etag and obj.etag != etag:
            raise Superseded(f"GET {bucket}/{key}: object changed since the event")
        for i in range(0, len(obj.data), chunk_size):
            yield obj.data[i : i + chunk_size]

    async def list(
        self, bucket: str, prefix: str = "", *, start_after: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        """Objects under ``prefix`` after ``start_after``, in S3's key order (UTF-8 bytes)."""
        after = start_after.encode()
        found = sorted(
            (
                key
                for (b, key) in self.objects
                if b == bucket and key.startswith(prefix) and key.encode() > after
            ),
            key=str.encode,
        )
        for key in found:
            obj = self.objects[(bucket, key)]
            yield ObjectInfo(
                bucket=bucket,
                key=key,
                etag=obj.etag,
                version_id=None,
                size=len(obj.data),
                last_modified=obj.modified,
            )

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's current state, or None."""
        obj = self.objects.get((bucket, key))
        if obj is None:
            return None
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=obj.etag,
            version_id=obj.version_id,
            size=len(obj.data),
            metadata=obj.metadata,
            last_modified=obj.modified,
        )

    async def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Store bytes or a stream of chunks; conditionally, as S3 does (412: Superseded)."""
        if isinstance(body, bytes | bytearray):
            held = self.objects.get((bucket, key))
            precondition(
                f"PUT {bucket}/{key}", held.etag if held else None, if_match, if_absent=if_absent
            )
            data = bytes(body)
        elif if_match is not None or if_absent:
            raise TypeError("a conditional write takes a bytes body")
        else:
            data = b"".join([chunk async for chunk in body])
        info = self.put_bytes(bucket, key, data, metadata)
        self.objects[(bucket, key)].content_type = content_type
        return info

    async def copy(self, bucket: str, key: str, *, to_bucket: str, to_key: str) -> ObjectInfo:
        """Copy an object, metadata included (a new version and Last-Modified, as S3 does)."""
        obj = self.objects.get((bucket, key))
        if obj is None:
            raise ObjectGone(f"COPY {bucket}/{key}: NoSuchKey")
        info = self.put_bytes(to_bucket, to_key, obj.data, obj.metadata)
        self.objects[(to_bucket, to_key)].content_type = obj.content_type
        return info

    async def delete(self, bucket: str, key: str) -> None:
        """Remove an object; a missing one is not an error (as in S3)."""
        self.objects.pop((bucket, key), None)


@dataclass(slots=True)
class MemoryPublisher:
    """Records what the worker publishes (retries, dead letters) instead of sending it."""

    messages: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Keep the message."""
        meta = {
            "headers": dict(headers or {}),
            "message_id": message_id,
            "expiration_ms": expiration_ms,
        }
        self.messages.append((queue, body, meta))

    def on(self, queue: str) -> list[dict[str, Any]]:
        """The decoded bodies published to ``queue``."""
        return [orjson.loads(body) for q, body, _ in self.messages if q == queue]
