"""The two seams the engine talks through: object storage and confirmed publishing.

Each has a real implementation in ``runtime.adapters`` (S3, RabbitMQ) and an
in-memory one in ``runtime.testing``; the engine and the author API see only
these protocols.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from runtime.core.streams import MIB


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """What a HEAD, PUT or listing tells about an object."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    size: int | None = None
    metadata: Mapping[str, str] | None = None
    last_modified: datetime | None = None


Body = bytes | AsyncIterable[bytes]
"""An object's content: bytes, or a stream of chunks (written with multipart)."""


class Storage(Protocol):
    """The object-store seam: the S3 implementation and the in-memory harness."""

    def stream(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        etag: str | None = None,
        chunk_size: int = MIB,
    ) -> AsyncIterator[bytes]:
        """Yield the object's bytes; raise Superseded if it no longer matches."""
        ...

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's current etag/version/metadata, or None if absent."""
        ...

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
        """Write an object atomically (single PUT, or multipart completion).

        ``if_match`` (an etag) or ``if_absent`` make a bytes write conditional:
        if the object is no longer that one (or exists), ``Superseded`` (412)
        and nothing is written.
        """
        ...

    def list(
        self, bucket: str, prefix: str = "", *, start_after: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        """Objects under ``prefix`` after ``start_after``, in key order (no metadata)."""
        ...

    async def copy(self, bucket: str, key: str, *, to_bucket: str, to_key: str) -> ObjectInfo:
        """Copy an object server-side, metadata included; ObjectGone if it is missing."""
        ...

    async def delete(self, bucket: str, key: str) -> None:
        """Remove an object (a missing one is not an error)."""
        ...


class Publisher(Protocol):
    """The publishing seam: RabbitMQ with confirms, or the harness's recorder."""

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish and return once the message is safely stored."""
        ...
