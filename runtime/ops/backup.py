"""``bucketfn backup`` and ``restore``: copy buckets between S3 endpoints, every version in order.

``mc mirror`` (and ``mc cp``) copy only each object's current version;
``mc replicate`` keeps every version but is server-side replication between
two MinIO deployments of the same release, needs versioning on both sides
(bucketfn's unversioned buckets cannot take part) and must be set up again in
reverse to restore. This works on any two S3 endpoints, in both directions,
with the same client the runtime uses:

- a versioned source bucket is listed with ListObjectVersions and each key's
  history — versions and delete markers — is replayed oldest first, so the
  copy's current version is the source's; an unversioned one is mirrored
  (its current objects);
- each version keeps its bytes, content type and other content headers, user
  metadata and object tags; a multipart source is re-uploaded with its own
  part size, so its ETag comes out the same (when all its parts but the last
  have one size, as every client uploads them);
- it is incremental: per key, what the destination already holds in the same
  order (compared by ETag and size) is skipped and only the rest is copied, so
  a second run copies nothing. It never deletes from the destination (a
  delete marker is replayed as a marker, and only into a versioned bucket).

What cannot be carried over by any S3 client: version IDs and Last-Modified
times (the destination assigns its own), and bucket configuration other than
versioning (notification and lifecycle rules are ``bucketfn init``'s).

Memory is bounded: keys are listed a page at a time, bodies are streamed
through a spooled file (single PUT) or a part at a time (multipart: one part
held), and at most ``concurrency`` keys are copied at once, each key's
versions in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from runtime.adapters.s3 import S3Storage, translate
from runtime.app.rules import covering_prefixes
from runtime.core.errors import UsageError
from runtime.core.streams import MIB, rechunk

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from runtime.core.settings import Settings

CONCURRENCY = 8  # keys copied at once; each key's versions go one after another
SPOOL_MEMORY = 16 * MIB  # a single-PUT body in memory up to this, on disk beyond
READ_CHUNK = MIB
PAGE = 1000  # keys (or versions) listed at once
HEADERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
)
"""Content headers a version keeps (besides user metadata and tags)."""
MULTIPART = re.compile(r"-(\d+)$")  # a multipart upload's ETag ends in -<parts>


@dataclass(frozen=True, slots=True)
class Version:
    """One entry of a key's history: a version (or a delete marker)."""

    key: str
    version_id: str | None  # None: listed without versions
    etag: str = ""
    size: int = 0
    marker: bool = False

    def same(self, other: Version) -> bool:
        """Whether ``other`` holds the same content (a marker matches a marker)."""
        if self.marker or other.marker:
            return self.marker == other.marker
        return (self.etag, self.size) == (other.etag, other.size)


@dataclass(slots=True, kw_only=True)
class Tally:
    """What a copy of one bucket did, for the table and ``--json``."""

    keys: int = 0  # keys listed at the source
    copied: int = 0  # versions written
    markers: int = 0  # delete markers written
    present: int = 0  # versions the destination already held
    bytes: int = 0
    versioned: bool = False


Progress = Callable[[str, Tally], None]


async def exists(client: S3Client, bucket: str) -> bool:
    """Whether ``bucket`` is there (and ours to read)."""
    try:
        await client.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


async def is_versioned(client: S3Client, bucket: str) -> bool:
    """Whether ``bucket`` keeps versions (suspended versioning still holds old ones)."""
    status = (await client.get_bucket_versioning(Bucket=bucket)).get("Status")
    return status in ("Enabled", "Suspended")


def narrowest(prefixes: Iterable[str]) -> list[str]:
    """The prefixes to list, sorted, without any that another one already covers."""
    return covering_prefixes(prefixes) or [""]


async def history(
    client: S3Client, bucket: str, prefix: str, *, versions: bool, page: int = PAGE
) -> AsyncIterator[tuple[str, list[Version]]]:
    """Each key under ``prefix`` in key order, with its history oldest first."""
    if not versions:
        async for v in _current(client, bucket, prefix, page):
            yield v.key, [v]
        return
    key, held = "", list[_Entry]()
    async for entries in _versions(client, bucket, prefix, page):
        for entry in entries:
            if entry[0] != key and held:
                yield key, _oldest_first(held)
                held = []
            key = entry[0]
            held.append(entry)
    if held:
        yield key, _oldest_first(held)


_Entry = tuple[str, bool, float, Version]  # key, is latest, Last-Modified, the version


def _oldest_first(entries: list[_Entry]) -> list[Version]:
    """One key's history in order: by Last-Modified, the latest last whatever its time.

    Sorted only once the key is complete: its history may span pages, the
    newest versions on the first.
    """
    return [e[3] for e in sorted(entries, key=lambda e: e[1:3])]


async def _current(client: S3Client, bucket: str, prefix: str, size: int) -> AsyncIterator[Version]:
    pages = client.get_paginator("list_objects_v2")
    config: Any = {"PageSize": size}
    async for page in pages.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=config):
        for o in page.get("Contents", []):
            yield Version(o["Key"], None, o.get("ETag", "").strip('"'), o.get("Size", 0))


async def _versions(
    client: S3Client, bucket: str, prefix: str, size: int
) -> AsyncIterator[list[_Entry]]:
    """Pages of versions and delete markers, each page in key order.

    ListObjectVersions returns the two as separate lists, each in key order and
    newest first within a key; merged here by key (a stable sort keeps the rest).
    """
    pages = client.get_paginator("list_object_versions")
    config: Any = {"PageSize": size}
    async for page in pages.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=config):
        entries = [
            (
                e["Key"],
                bool(e.get("IsLatest")),
                e["LastModified"].timestamp(),
                Version(
                    e["Key"], e.get("VersionId"), e.get("ETag", "").strip('"'), e.get("Size", 0)
                ),
            )
            for e in page.get("Versions", [])
        ]
        entries += [
            (
                m["Key"],
                bool(m.get("IsLatest")),
                m["LastModified"].timestamp(),
                Version(m["Key"], m.get("VersionId"), marker=True),
            )
            for m in page.get("DeleteMarkers", [])
        ]
        entries.sort(key=lambda e: e[0])
        yield entries


async def joined(
    source: AsyncIterator[tuple[str, list[Version]]],
    target: AsyncIterator[tuple[str, list[Version]]],
) -> AsyncIterator[tuple[list[Version], list[Version]]]:
    """Each source key's history beside the target's for the same key (empty if none).

    Both listings are in key order (UTF-8 byte order, which is code point order),
    so one pass over each suffices; target keys the source lacks are passed over.
    """
    there = await anext(target, None)
    async for key, versions in source:
        while there is not None and there[0] < key:
            there = await anext(target, None)
        yield versions, there[1] if there is not None and there[0] == key else []


def plan(source: Sequence[Version], target: Sequence[Version], *, history: bool) -> list[Version]:
    """The source versions to write so that the target ends as the source does.

    With ``history`` (both sides versioned), the versions after the longest
    common start of the two histories, in order; otherwise only the current
    version, if the target's differs (and never a delete marker).
    """
    if not history:
        latest = source[-1]
        if latest.marker or (target and target[-1].same(latest)):
            return []  # a marker would delete the only copy: never delete
        return [latest]
    common = 0
    while common < min(len(source), len(target)) and source[common].same(target[common]):
        common += 1
    return list(source[common:])


def _tagging(tags: Sequence[Any]) -> str:
    return urlencode([(t["Key"], t["Value"]) for t in tags])


async def copy_version(source: S3Client, target: S3Client, bucket: str, v: Version) -> int:
    """Write one version of ``source`` to ``target``; returns the bytes copied."""
    if v.marker:
        await target.delete_object(Bucket=bucket, Key=v.key)  # a new delete marker
        return 0
    pin: dict[str, Any] = {"VersionId": v.version_id} if v.version_id else {}
    obj = await source.get_object(Bucket=bucket, Key=v.key, **pin)
    extra: dict[str, Any] = {h: obj[h] for h in HEADERS if obj.get(h)}  # type: ignore[literal-required]
    extra["Metadata"] = obj.get("Metadata", {})
    if obj.get("TagCount"):  # x-amz-tagging-count: only then is there a tag set to read
        tags = (await source.get_object_tagging(Bucket=bucket, Key=v.key, **pin))["TagSet"]
        extra["Tagging"] = _tagging(tags)
    body = obj["Body"]
    try:
        parts = MULTIPART.search(v.etag)
        if parts:  # even one part: its ETag is "<digest>-1", not a single PUT's
            head = await source.head_object(Bucket=bucket, Key=v.key, PartNumber=1, **pin)
            await _multipart(target, bucket, v.key, body, head["ContentLength"], extra)
        else:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
                async for chunk in body.iter_chunks(READ_CHUNK):
                    await asyncio.to_thread(spool.write, chunk)
                await asyncio.to_thread(spool.seek, 0)
                await target.put_object(Bucket=bucket, Key=v.key, Body=spool, **extra)
    finally:
        body.close()
    return v.size


async def _multipart(
    target: S3Client, bucket: str, key: str, body: Any, part_size: int, extra: dict[str, Any]
) -> None:
    """Upload ``body`` in parts of the source's own size: the same parts, the same ETag."""
    upload = await target.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    upload_id = upload["UploadId"]
    done: list[Any] = []
    try:
        async for piece in rechunk(body.iter_chunks(READ_CHUNK), part_size):
            done.append(await _part(target, bucket, key, upload_id, len(done) + 1, piece))
        if not done:  # an empty object uploaded in parts is still one (empty) part
            done.append(await _part(target, bucket, key, upload_id, 1, b""))
        await target.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    except BaseException:
        # No orphaned parts: abort whatever failed (shielded from a cancellation).
        with contextlib.suppress(Exception):
            await asyncio.shield(
                target.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            )
        raise


async def _part(
    target: S3Client, bucket: str, key: str, upload_id: str, number: int, data: bytes
) -> dict[str, Any]:
    resp = await target.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
    )
    return {"ETag": resp["ETag"], "PartNumber": number}


async def copy_bucket(
    source: S3Client,
    target: S3Client,
    bucket: str,
    *,
    prefixes: Iterable[str] = ("",),
    concurrency: int = CONCURRENCY,
    progress: Progress | None = None,
) -> Tally:
    """Copy ``bucket`` (the keys under ``prefixes``) from ``source`` to ``target``.

    The target bucket is created if missing, and versioned if the source is.
    """
    tally = Tally(versioned=await is_versioned(source, bucket))
    await S3Storage(target).ensure_bucket(bucket, versioned=tally.versioned)
    # Asked again: a store may accept the versioning call and keep no versions.
    keep = tally.versioned and await is_versioned(target, bucket)
    running: set[asyncio.Task[None]] = set()

    async def one(todo: list[Version], already: int) -> None:
        for v in todo:  # in order: the last one written is the current version
            tally.bytes += await copy_version(source, target, bucket, v)
            tally.markers += v.marker
            tally.copied += not v.marker
        tally.present += already

    try:
        for prefix in narrowest(prefixes):
            pairs = joined(
                history(source, bucket, prefix, versions=tally.versioned),
                history(target, bucket, prefix, versions=keep),
            )
            async for versions, there in pairs:
                tally.keys += 1
                todo = plan(versions, there, history=keep)
                if len(running) >= concurrency:
                    finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    running.difference_update(finished)
                    for task in finished:
                        task.result()  # the first failure stops the copy
                running.add(asyncio.create_task(one(todo, len(versions) - len(todo))))
                if progress:
                    progress(bucket, tally)
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    if progress:
        progress(bucket, tally)
    return tally


async def transfer(
    source: Settings,
    target: Settings,
    buckets: Sequence[str],
    *,
    prefixes: Iterable[str] = ("",),
    required: bool = True,
    progress: Progress | None = None,
) -> dict[str, Tally | None]:
    """Copy ``buckets`` from the ``source`` endpoint to the ``target`` one, one after another.

    A bucket missing at the source is an error if ``required``, else reported
    as ``None`` (a backup of a deployment that never wrote results, say).
    """
    done: dict[str, Tally | None] = {}
    wanted = list(prefixes) or [""]
    async with S3Storage.connect(source) as src, S3Storage.connect(target) as dst:
        for bucket in buckets:
            try:
                if not await exists(src.client, bucket):
                    if required:
                        raise UsageError(f"no bucket {bucket!r} at {source.s3_endpoint}")
                    done[bucket] = None
                    continue
                done[bucket] = await copy_bucket(
                    src.client, dst.client, bucket, prefixes=wanted, progress=progress
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"copying bucket {bucket}") from exc
    return done


def endpoint(
    settings: Settings, url: str, access_key: str | None, secret_key: str | None
) -> Settings:
    """``settings`` pointed at another S3 endpoint (its credentials default to the same)."""
    update: dict[str, Any] = {"s3_endpoint": url}
    if access_key:
        update["s3_access_key"] = access_key
    if secret_key:
        update["s3_secret_key"] = SecretStr(secret_key)
    return settings.model_copy(update=update)
