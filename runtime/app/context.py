"""What a function gets besides its event: streamed I/O, lineage, and a bound logger.

Everything a function does to storage goes through here, so that what it
writes is stamped (loop guard, lineage), listed in its result record, and
confined to keys that cannot escape their prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from runtime.app.ledger import HISTORY, Entry, Ledger, Standing
from runtime.core import names, streams
from runtime.core.errors import Superseded, UsageError
from runtime.core.names import Meta
from runtime.core.records import digest

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from runtime.core.events import ObjectEvent
    from runtime.core.seams import Body, ObjectInfo, Storage


class Context:
    """Per-invocation context: read the source, write outputs, list and check, log.

    Outputs are stamped with the producing function (the loop guard reads it)
    and the source they came from (lineage), and are listed once each in the
    result record.
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
        self._storage = storage
        self.output_bucket = output_bucket
        self.chunk_size = chunk_size
        self.log = log
        self._outputs: dict[str, None] = {}  # insertion-ordered set

    @property
    def outputs(self) -> tuple[str, ...]:
        """``s3://`` locations written so far, each once, in the order first written."""
        return tuple(self._outputs)

    @property
    def output_prefix(self) -> str:
        """``<function>/<source key>/`` in the output bucket."""
        return names.output_prefix(self.function, self.event.key)

    @staticmethod
    def safe_key(key: str) -> str:
        """A relative key derived from ``key`` that cannot escape the prefix it is put under."""
        return names.safe_key(key)

    @staticmethod
    def gunzip(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """Decompress a gzip stream as it is read (a corrupt one is an InputError)."""
        return streams.gunzip(chunks)

    def read(
        self, event: ObjectEvent | None = None, *, chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream the event's object, pinned to the event's version (or etag).

        If the object changed since the event, this raises ``Superseded`` and
        the invocation is dropped in favour of the newer event's.
        """
        ev = event or self.event
        return self.read_object(
            ev.bucket, ev.key, version_id=ev.version_id, etag=ev.etag, chunk_size=chunk_size
        )

    def read_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        etag: str | None = None,
        chunk_size: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream any object, pinned to ``version_id`` or ``etag`` when given."""
        return self._storage.stream(
            bucket,
            key,
            version_id=version_id,
            etag=etag,
            chunk_size=chunk_size or self.chunk_size,
        )

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's current etag, version and metadata, or None if absent."""
        return await self._storage.head(bucket, key)

    async def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix``, in key order (equal lists: nothing changed)."""
        return [o async for o in self._storage.list(bucket, prefix)]

    async def still_current(self, event: ObjectEvent | None = None) -> None:
        """Raise ``Superseded`` if the event's object has changed since the event.

        A long run (minutes for a large file) can be overtaken by a newer
        version of its source; checking again right before promoting keeps it
        from overwriting what the newer version's run wrote (its own event
        redoes the work).
        """
        ev = event or self.event
        info = await self._storage.head(ev.bucket, ev.key)
        if info is None or not ev.describes(info.version_id, info.etag):
            raise Superseded(f"{ev.bucket}/{ev.key} changed while it was being processed")

    def lineage(self, **extra: str) -> dict[str, str]:
        """Metadata every output carries: who made it, from what."""
        ev = self.event
        meta = {
            Meta.FUNCTION: self.function,
            Meta.FUNCTION_VERSION: self.function_version,
            Meta.SOURCE_BUCKET: ev.bucket,
            # S3 metadata must be ASCII; keys may not be, so it is percent-encoded,
            # and bounded: MinIO refuses more than 2 KiB of metadata in all.
            Meta.SOURCE_KEY: _bounded(_ascii(ev.key)),
            Meta.REVISION: ev.revision,
            # With the revision: which write of the source an output came from.
            Meta.SEQUENCER: ev.sequencer or "",
        }
        meta.update(extra)
        return meta

    async def write(
        self, name: str, body: Body, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Write ``name`` beside the result record (bytes, or a stream of chunks)."""
        segments = name.split("/")
        if (
            any(seg in ("", ".", "..") for seg in segments)
            or name == names.RESULT_NAME
            or segments[0] == HISTORY
        ):
            raise UsageError(
                f"invalid output name {name!r}: a relative name without empty, '.' or "
                f"'..' segments, not {names.RESULT_NAME!r} and not under {HISTORY!r}"
            )
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
        info = await self._storage.put(
            bucket, key, body, content_type=content_type, metadata=self.lineage(**(metadata or {}))
        )
        self._outputs[f"s3://{bucket}/{key}"] = None
        return info

    async def promote(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write an object derived from this event's revision so no older revision replaces it.

        For a key another invocation of this function may write too (a lake
        layer's file for this source): the body goes to a history entry under
        the output prefix, then a server-side copy puts the newest revision's
        entry in place (:mod:`runtime.app.ledger`). However long the upload
        takes, an older revision's promotion never ends up over a newer one's.
        Raises ``Superseded`` if a newer revision's promotion holds the key.
        """
        ev = self.event
        target = digest(f"{bucket}/{key}".encode())
        ledger = Ledger(
            storage=self._storage,
            history_bucket=self.output_bucket,
            history=f"{self.output_prefix}{HISTORY}/{target}/",
            bucket=bucket,
            key=key,
            source_bucket=ev.bucket,
            source_key=ev.key,
        )
        standing = await ledger.write(
            Entry.of(ev.revision, ev.sequencer),
            body,
            content_type=content_type,
            metadata=self.lineage(**(metadata or {})),
            # A redone run of this very code on this revision keeps the first run's file.
            keep={Meta.FUNCTION_VERSION: self.function_version},
        )
        if standing is Standing.LOST:
            raise Superseded(f"{bucket}/{key} holds a newer revision of {ev.bucket}/{ev.key}")
        self._outputs[f"s3://{bucket}/{key}"] = None


def _ascii(text: str) -> str:
    return quote(text, safe="/ !$&'()*+,;=:@-._~")


MAX_LINEAGE_KEY = 512  # bytes of the source key kept in metadata; the record keeps it whole


def _bounded(text: str) -> str:
    if len(text) <= MAX_LINEAGE_KEY:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[: MAX_LINEAGE_KEY - 40]}~{digest}"
