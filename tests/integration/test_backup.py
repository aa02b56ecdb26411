"""A key's history as the backup reads it from real MinIO, across listing pages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from runtime.adapters.s3 import S3Storage
from runtime.ops.backup import history

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from runtime.core.settings import Settings


@pytest.fixture
async def bucket(settings: Settings) -> AsyncIterator[tuple[S3Client, str]]:
    """A versioned bucket of this test's own, removed with every version afterwards."""
    name = f"bft-backup-{uuid.uuid4().hex[:8]}"
    async with S3Storage.connect(settings) as storage:
        await storage.ensure_bucket(name, versioned=True)
        yield storage.client, name
        s3 = storage.client
        listed = await s3.list_object_versions(Bucket=name)
        for o in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
            await s3.delete_object(Bucket=name, Key=o["Key"], VersionId=o["VersionId"])
        await s3.delete_bucket(Bucket=name)


async def test_history_is_oldest_first_even_when_a_key_spans_pages(
    bucket: tuple[S3Client, str],
) -> None:
    s3, name = bucket
    written: list[str] = []
    for i in range(5):
        resp = await s3.put_object(Bucket=name, Key="a/one", Body=f"v{i}".encode())
        written.append(resp["VersionId"])
        if i == 2:  # a delete marker in the middle of the history
            marker = await s3.delete_object(Bucket=name, Key="a/one")
            written.append(marker["VersionId"])
    await s3.put_object(Bucket=name, Key="a/two", Body=b"x")
    await s3.put_object(Bucket=name, Key="b/three", Body=b"x")

    # Two entries per page: "a/one"'s six come newest first over three pages.
    paged = [(key, h) async for key, h in history(s3, name, "a/", versions=True, page=2)]
    assert [key for key, _ in paged] == ["a/one", "a/two"]
    assert [x.version_id for x in paged[0][1]] == written
    assert [x.marker for x in paged[0][1]] == [False, False, False, True, False, False]
    whole = [(key, h) async for key, h in history(s3, name, "a/", versions=True)]
    assert whole == paged
    current = [(key, len(h)) async for key, h in history(s3, name, "", versions=False, page=1)]
    assert current == [("a/one", 1), ("a/two", 1), ("b/three", 1)]
