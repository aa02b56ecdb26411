"""The :class:`~runtime.core.seams.Storage` seam on S3, through aioboto3.

One client (and its connection pool) serves the whole process. Reads are
streamed in ``read_chunk_size`` pieces — aiobotocore's default of 1 KiB would
cost ~8× in throughput — so an object of any size needs bounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from runtime.adapters.endpoints import share_endpoints
from runtime.core.errors import ObjectGone, StorageError, Superseded, Unaddressable
from runtime.core.seams import Body, ObjectInfo, Storage
from runtime.core.settings import Settings, load
from runtime.core.streams import MIB, rechunk

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

PART_SIZE = 8 * MIB  # multipart part size: a streamed write holds about two parts
RANGE_SIZE = 8 * MIB  # bytes of the first ranged GET, and the least of any (see stream)
MAX_RANGE = 64 * MIB  # the most bytes one ranged GET asks for
HOLD = 0.1  # seconds a range should take to read, at the reader's own pace


def _code(exc: ClientError) -> str:
    err: Any = exc.response.get("Error", {})
    return str(err.get("Code", ""))


# What MinIO and S3 answer for a key they cannot name (400; a HEAD has no body, so
# only its status). Not every 400 is permanent: S3's RequestTimeout is a 400 too.
_UNADDRESSABLE = frozenset(
    {"XMinioInvalidObjectName", "InvalidObjectName", "KeyTooLongError", "InvalidURI", "400"}
)


def translate(exc: Exception, what: str) -> StorageError:
    """Map a botocore error to bucketfn's tree (404 → ObjectGone, 412 → Superseded)."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            return ObjectGone(f"{what}: {code}")
        # 409 ConditionalRequestConflict: another conditional write of the key is under
        # way (AWS S3); as with 412, the writer looks again.
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return Superseded(f"{what}: object changed since the event ({code})")
        if code in _UNADDRESSABLE:
            return Unaddressable(f"{what}: the store cannot name this object ({code})")
        return StorageError(f"{what}: {code}: {exc}")
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


class S3Storage:
    """:class:`Storage` on a real S3 endpoint (MinIO)."""

    def __init__(self, client: S3Client) -> None:
        self._s3 = client

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[S3Storage]:
        """Open one pooled client for the process."""
        session = aioboto3.Session()
        config = AioConfig(
            max_pool_connections=settings.s3_max_connections,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        )
        async with session.client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
            region_name=settings.s3_region,
            config=config,
        ) as client:
            share_endpoints(client)  # ~0.5 ms of CPU saved per request
            yield cls(client)

    @property
    def client(self) -> S3Client:
        """The raw client, for provisioning calls outside the Storage seam."""
        return self._s3

    async def ensure_bucket(self, bucket: str, *, versioned: bool) -> bool:
        """Create ``bucket`` if missing (and turn on versioning); returns whether it was created."""
        created = False
        try:
            try:
                await self._s3.head_bucket(Bucket=bucket)
            except ClientError:
                try:
                    await self._s3.create_bucket(Bucket=bucket)
                    created = True
                except ClientError as exc:
                    if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            if versioned:
                await self._s3.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"creating bucket {bucket}") from exc
        return created

    async def stream(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        etag: str | None = None,
        chunk_size: int = MIB,
    ) -> AsyncIterator[bytes]:
        """Stream an object in bounded ranges, each pinned to the one revision.

        One GET for a whole object holds MinIO's per-object lock while it streams:
        a user's overwrite of the key waited for the whole read (8.6 s behind a
        560 MB read). Each range is a GET of its own, so writers get in between
        ranges; every range is pinned to the event's version, else to its etag
        (If-Match) — else to the etag the first range returned — so the bytes are
        always one revision's. Pinned to an etag, an overwrite is noticed at the
        next range: the read ends with ``Superseded`` (412) rather than mixing two
        revisions. Pinned to a version, it reads on: that version is kept.

        The first range is ``RANGE_SIZE``; each next one is as long as this
        reader read in ``HOLD`` seconds, within ``RANGE_SIZE``..``MAX_RANGE``:
        a writer waits about ``HOLD`` at most behind a fast reader, and behind a
        slow one no longer than it reads one ``RANGE_SIZE``.
        """
        pin: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            pin["VersionId"] = version_id
        elif etag:
            pin["IfMatch"] = f'"{etag}"'
        span = max(RANGE_SIZE, chunk_size)
        offset, total = 0, None
        while total is None or offset < total:
            started, first = time.monotonic(), offset
            try:
                resp = await self._s3.get_object(**pin, Range=f"bytes={offset}-{offset + span - 1}")
            except (ClientError, BotoCoreError) as exc:
                if offset == 0 and isinstance(exc, ClientError) and _code(exc) == "InvalidRange":
                    return  # an empty object has no byte 0 to range over
                what = f"GET {bucket}/{key}" + (f" (from byte {offset})" if offset else "")
                raise translate(exc, what) from exc
            if total is None:
                total = _total(resp, offset)
                if "VersionId" not in pin and "IfMatch" not in pin and resp.get("ETag"):
                    pin["IfMatch"] = resp["ETag"]
            body = resp["Body"]
            try:
                async for chunk in body.iter_chunks(chunk_size):
                    offset += len(chunk)
                    yield chunk
            except (ClientError, BotoCoreError, OSError) as exc:
                raise translate(exc, f"GET {bucket}/{key} (reading body)") from exc
            finally:
                body.close()
            if total is None or resp.get("ContentLength", 0) == 0:
                return  # no size to go by (a store without Content-Range): that was all
            # The next range is as long as this reader reads in HOLD seconds: a fast
            # reader (a counter at ~1 GB/s) takes 64 MiB per GET and the per-request
            # cost all but vanishes (8 MiB ranges ran at ~0.6x one GET's speed), while
            # a slow one keeps 8 MiB ranges, so a writer never waits long for the lock.
            rate = (offset - first) / max(time.monotonic() - started, 1e-6)
            span = max(RANGE_SIZE, chunk_size, min(MAX_RANGE, int(rate * HOLD)))

    async def list(
        self, bucket: str, prefix: str = "", *, start_after: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        """Objects under ``prefix`` after ``start_after``, in key order, page by page."""
        pages = self._s3.get_paginator("list_objects_v2")
        try:
            async for page in pages.paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after):
                for o in page.get("Contents", []):
                    yield ObjectInfo(
                        bucket=bucket,
                        key=o["Key"],
                        etag=o.get("ETag", "").strip('"') or None,
                        version_id=None,
                        size=o.get("Size"),
                        last_modified=o.get("LastModified"),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"LIST {bucket}/{prefix}") from exc

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The current state of an object, or None if absent."""
        try:
            resp = await self._s3.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            err = translate(exc, f"HEAD {bucket}/{key}")
            if isinstance(err, ObjectGone):
                return None
            raise err from exc
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=resp.get("ETag", "").strip('"') or None,
            version_id=resp.get("VersionId"),
            size=resp.get("ContentLength"),
            last_modified=resp.get("LastModified"),
            metadata=resp.get("Metadata", {}),
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
        """Single PUT for bytes; multipart for a stream (atomic on completion)."""
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        if if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        elif if_absent:
            extra["IfNoneMatch"] = "*"
        try:
            if isinstance(body, bytes | bytearray):
                resp = await self._s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
                return ObjectInfo(
                    bucket=bucket,
                    key=key,
                    etag=resp.get("ETag", "").strip('"') or None,
                    version_id=resp.get("VersionId"),
                    size=len(body),
                )
            if if_match is not None or if_absent:
                raise TypeError("a conditional write takes a bytes body")
            return await self._multipart(bucket, key, body, extra)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"PUT {bucket}/{key}") from exc

    async def copy(self, bucket: str, key: str, *, to_bucket: str, to_key: str) -> ObjectInfo:
        """Server-side CopyObject, metadata and content type kept (``MetadataDirective=COPY``)."""
        try:
            resp = await self._s3.copy_object(
                Bucket=to_bucket,
                Key=to_key,
                CopySource={"Bucket": bucket, "Key": key},
                MetadataDirective="COPY",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"COPY {bucket}/{key} to {to_bucket}/{to_key}") from exc
        etag = resp.get("CopyObjectResult", {}).get("ETag", "")
        return ObjectInfo(
            bucket=to_bucket,
            key=to_key,
            etag=etag.strip('"') or None,
            version_id=resp.get("VersionId"),
        )

    async def delete(self, bucket: str, key: str) -> None:
        """DeleteObject; S3 answers 204 for a missing key too."""
        try:
            await self._s3.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"DELETE {bucket}/{key}") from exc

    async def _multipart(
        self, bucket: str, key: str, chunks: AsyncIterable[bytes], extra: dict[str, Any]
    ) -> ObjectInfo:
        """Upload a stream part by part; the object appears only on completion.

        Hand-written rather than aioboto3's upload_fileobj: that one reads up to
        100 parts ahead (800 MB here) when the network is slower than the
        producer, deadlocks when a part fails with a smaller read-ahead, and
        returns no etag or version. Here one part uploads while the next is
        read, and any failure aborts the upload so no parts are left behind.
        """
        pieces = rechunk(chunks, PART_SIZE)
        first = await anext(pieces, None)
        if first is None or len(first) < PART_SIZE:
            return await self.put(bucket, key, first or b"", **_put_args(extra))
        upload = await self._s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)
        upload_id = upload["UploadId"]
        done: list[Any] = []
        try:
            part: bytes | None = first
            while part is not None:
                number = len(done) + 1
                sending = asyncio.ensure_future(
                    self._s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                    )
                )
                try:
                    part = await anext(pieces, None)  # read the next part meanwhile
                finally:
                    resp = await sending
                done.append({"ETag": resp["ETag"], "PartNumber": number})
            result = await self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                )
            raise
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=result.get("ETag", "").strip('"') or None,
            version_id=result.get("VersionId"),
        )


def _total(resp: Mapping[str, Any], offset: int) -> int | None:
    """The object's size from a ranged GET's ``Content-Range: bytes a-b/total``."""
    text = str(resp.get("ContentRange") or "")
    _, _, size = text.rpartition("/")
    if size.isdigit():
        return int(size)
    return None if not text else offset + int(resp.get("ContentLength", 0))


def _put_args(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"content_type": extra["ContentType"], "metadata": extra["Metadata"]}


@contextlib.asynccontextmanager
async def open_storage(settings: Settings | None = None) -> AsyncIterator[Storage]:
    """The deployment's object store as a :class:`Storage`, for scripts that seed or read data.

    Settings come from the environment (``BUCKETFN_S3_*``) unless given.
    """
    async with S3Storage.connect(settings or load()) as storage:
        yield storage
