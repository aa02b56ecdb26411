"""What a function gets besides its event: streamed I/O and a bound logger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from runtime import names
from runtime.routing import PRODUCER_META

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from runtime.events import ObjectEvent
    from runtime.storage import Body, ObjectInfo, Storage


class Context:
    """Per-invocation context: read the source, write outputs, log.

    Outputs are stamped with the producing function (the loop guard reads it)
    and the source they came from (lineage), and are listed in the result record.
    """

    def __init__(
        self,
        *,
        function: str,
        function_version: str,
        event: ObjectEvent,
        attempt: int,
        storage: Storage,
        output_bucket: str,
        chunk_size: int,
        log: FilteringBoundLogger,
    ) -> None:
        self.function = function
        self.function_version = function_version
        self.event = event
        self.attempt = attempt
        self.storage = storage
        self.output_bucket = output_bucket
        self.chunk_size = chunk_size
        self.log = log
        self.outputs: list[str] = []

    @property
    def output_prefix(self) -> str:
        """``<function>/<source key>/`` in the output bucket."""
        return names.output_prefix(self.function, self.event.key)

    def read(
        self, event: ObjectEvent | None = None, *, chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream the event's object, pinned to the event's version (or etag).

        If the object changed since the event, this raises ``Superseded`` and
        the invocation is dropped in favour of the newer event's.
        """
        ev = event or self.event
        return self.storage.stream(
            ev.bucket,
            ev.key,
            version_id=ev.version_id,
            etag=ev.etag,
            chunk_size=chunk_size or self.chunk_size,
        )

    def lineage(self, **extra: str) -> dict[str, str]:
        """Metadata every output carries: who made it, from what."""
        ev = self.event
        meta = {
            PRODUCER_META: self.function,
            "bucketfn-function-version": self.function_version,
            "bucketfn-source-bucket": ev.bucket,
            # S3 metadata must be ASCII; keys may not be, so it is percent-encoded.
            "bucketfn-source-key": _ascii(ev.key),
            "bucketfn-source-revision": ev.revision,
        }
        meta.update(extra)
        return meta

    async def write(
        self, name: str, body: Body, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Write ``name`` beside the result record (bytes, or a stream of chunks)."""
        if not name or name.startswith("/") or ".." in name.split("/") or name == "result.json":
            raise ValueError(f"invalid output name {name!r}")
        return await self.put(
            self.output_bucket, self.output_prefix + name, body, content_type=content_type
        )

    async def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Write any object (e.g. promote to the next lake layer), stamped with lineage."""
        info = await self.storage.put(
            bucket, key, body, content_type=content_type, metadata=self.lineage(**(metadata or {}))
        )
        self.outputs.append(f"s3://{bucket}/{key}")
        return info


def _ascii(text: str) -> str:
    return quote(text, safe="/ !$&'()*+,;=:@-._~")
