"""Backup and restore on the real stack: the buckets to a second MinIO and back, then a replay.

A second MinIO on loopback holds the backup; the test starts it (through
``infra/local/minio.sh``, with its own address and ``$BUCKETFN_STATE/backup``)
unless one answers there already, and stops only what it started.

Every object the test writes lives under its own tag, and the backup,
restore, drop and backfill are scoped to it, so other tests' and other runs'
lake data is never touched. ``curated/orders/daily_totals.parquet`` is shared:
its rows for the tag's customers are this test's contribution.

"The same contents", precisely (files are rewritten, with new version IDs,
sequencers and times, so bytes and ETags may differ):

- a Parquet file: the same schema and the same rows in the same order;
- a rejects file: the same lines;
- an object's user metadata: the same, except the lineage fields that name the
  source's revision and event sequencer (the restored raw's are new) and the
  id of the write that put it in place;
- the shared total: the same rows for the tag's customers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest

from runtime.core.names import Meta, output_prefix
from tests.e2e.test_lake import orders_csv, result_for
from tests.servers import deployment_env, s3_client, unique

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runtime.core.settings import Settings
    from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
MINIO = ROOT / "infra" / "local" / "minio.sh"
# The second MinIO: by default the first one's port + 5 and + 6 (9005 and 9006 beside
# 9000), so each first MinIO (one per developer's slot) has a second of its own.
_HOST, _, _PORT = os.environ.get("MINIO_ADDRESS", "127.0.0.1:9000").rpartition(":")
ADDRESS = os.environ.get("BUCKETFN_BACKUP_MINIO_ADDRESS", f"{_HOST}:{int(_PORT) + 5}")
CONSOLE = os.environ.get("BUCKETFN_BACKUP_MINIO_CONSOLE_ADDRESS", f"{_HOST}:{int(_PORT) + 6}")
LAKE = ("raw", "staging", "curated")
# Name the source's write, or one write of the output: new after a restore.
LINEAGE = {Meta.REVISION, Meta.SEQUENCER, "bucketfn-write"}
TOTAL_KEY = "orders/daily_totals.parquet"
PART = 5 * 1024 * 1024  # S3's smallest multipart part


def _minio(action: str) -> subprocess.CompletedProcess[str]:
    state = Path(os.environ.get("BUCKETFN_STATE", ROOT / ".state")) / "backup"
    env = {
        **os.environ,
        "MINIO_ADDRESS": ADDRESS,
        "MINIO_CONSOLE_ADDRESS": CONSOLE,
        "BUCKETFN_STATE": str(state),
    }
    return subprocess.run(
        [str(MINIO), action], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def second(stack: Stack) -> Iterator[S3Client]:
    """A client of the second MinIO, started for the module unless it is running."""
    started = _minio("status").stdout.strip() != "running"
    if started:
        run = _minio("start")
        assert run.returncode == 0, f"the second MinIO did not start:\n{run.stderr}"
    client = s3_client(stack.settings, endpoint=f"http://{ADDRESS}")
    client.list_buckets()  # answers, or the test fails here
    yield client
    if started:
        _minio("stop")


async def cli(settings: Settings, *args: str) -> Any:
    """Run ``bucketfn ARGS --json`` as a user would; its JSON output."""
    env = deployment_env(settings)
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "runtime", *args, "--app", "tests.e2e.conftest:APP", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return orjson.loads(run.stdout)


def histories(client: S3Client, bucket: str, prefix: str) -> dict[str, list[tuple[str, int]]]:
    """Per key, its versions oldest first as (ETag or "marker", size): content, not IDs."""
    entries: list[tuple[str, bool, Any, tuple[str, int]]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        entries += [
            (v["Key"], v["IsLatest"], v["LastModified"], (v["ETag"], v["Size"]))
            for v in page.get("Versions", [])
        ]
        entries += [
            (m["Key"], m["IsLatest"], m["LastModified"], ("marker", 0))
            for m in page.get("DeleteMarkers", [])
        ]
    out: dict[str, list[tuple[str, int]]] = {}
    for key, _, _, what in sorted(entries, key=lambda e: e[:3]):
        out.setdefault(key, []).append(what)
    return out


def keys(client: S3Client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def described(client: S3Client, bucket: str, key: str) -> dict[str, Any]:
    """An object's content as defined above, with its headers, metadata and tags."""
    obj = client.get_object(Bucket=bucket, Key=key)
    body = obj["Body"].read()
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(body))
        content: Any = (str(table.schema), table.to_pylist())
    else:
        content = body.splitlines()
    return {
        "content": content,
        "type": obj["ContentType"],
        "metadata": {k: v for k, v in obj["Metadata"].items() if k not in LINEAGE},
        "tags": client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"],
    }


def lake_of(client: S3Client, tag: str) -> dict[str, Any]:
    """Everything the lake derived from the tag's raw files, as contents."""
    prefixes = {
        "staging": (f"orders/{tag}/", f"_rejected/orders/{tag}/"),
        "curated": (f"orders/_partials/{tag}/",),
    }
    out: dict[str, Any] = {
        f"{bucket}/{key}": described(client, bucket, key)
        for bucket, ps in prefixes.items()
        for p in ps
        for key in keys(client, bucket, p)
    }
    total = pq.read_table(
        io.BytesIO(client.get_object(Bucket="curated", Key=TOTAL_KEY)["Body"].read())
    )
    out["total"] = sorted(
        (tuple(r.values()) for r in total.to_pylist() if r["customer_id"].startswith(tag)),
        key=repr,
    )
    return out


def drop(client: S3Client, bucket: str, prefix: str) -> int:
    """Delete every version and marker under ``prefix``; how many."""
    gone = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            gone += 1
    return gone


@contextlib.contextmanager
def no_events(client: S3Client, bucket: str) -> Iterator[None]:
    """No notification rules on ``bucket`` meanwhile; its own rules back afterwards."""
    rules: Any = client.get_bucket_notification_configuration(Bucket=bucket)
    rules.pop("ResponseMetadata", None)
    client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        client.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration=rules,
        )


async def lake_built(stack: Stack, raw: dict[str, str]) -> None:
    """Wait until each raw key's current version is staged and its staging file curated."""
    for key, version in raw.items():
        staged = await result_for(stack, "to_staging", key, version)
        assert staged["status"] == "ok", staged
        staging_key = staged["output"]["staging_key"]
        head = await asyncio.to_thread(stack.s3.head_object, Bucket="staging", Key=staging_key)
        assert head["Metadata"][Meta.REVISION] == version
        curated = await result_for(stack, "to_curated", staging_key, head["ETag"].strip('"'))
        assert curated["status"] == "ok", curated
    await stack.settle()  # any late event was sent before the sentinel's


async def put(stack: Stack, key: str, body: bytes, **extra: Any) -> str:
    resp = await asyncio.to_thread(stack.s3.put_object, Bucket="raw", Key=key, Body=body, **extra)
    return resp["VersionId"]


async def multipart(stack: Stack, key: str, size: int) -> str:
    """A two-part upload: its ETag is the parts' digest, not the body's."""
    s3 = stack.s3
    data = os.urandom(size)
    up = await asyncio.to_thread(s3.create_multipart_upload, Bucket="raw", Key=key)
    parts: list[Any] = []
    for number, start in enumerate(range(0, size, PART), 1):
        resp = await asyncio.to_thread(
            s3.upload_part,
            Bucket="raw",
            Key=key,
            UploadId=up["UploadId"],
            PartNumber=number,
            Body=data[start : start + PART],
        )
        parts.append({"ETag": resp["ETag"], "PartNumber": number})
    done = await asyncio.to_thread(
        s3.complete_multipart_upload,
        Bucket="raw",
        Key=key,
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    assert done["ETag"].endswith('-2"')
    return done["VersionId"]


async def test_a_restored_raw_replayed_by_backfill_rebuilds_staging_and_curated(
    stack: Stack, second: S3Client
) -> None:
    tag = unique("backup")
    s3, base = stack.s3, f"orders/{tag}/"
    first, _ = orders_csv(f"{tag}-a")
    changed, _ = orders_csv(f"{tag}-a2")
    later, _ = orders_csv(f"{tag}-b")
    # raw: a file with two versions, a gzipped one with headers, metadata and tags, a
    # deleted object (two versions and a delete marker) and a multipart one.
    # The first version is built before the second lands: two versions in flight at once
    # could leave the older one's rejects or partial beside the newer staging file.
    await lake_built(stack, {f"{base}a.csv": await put(stack, f"{base}a.csv", first)})
    raw = {f"{base}a.csv": await put(stack, f"{base}a.csv", changed)}
    raw[f"{base}b.csv.gz"] = await put(
        stack,
        f"{base}b.csv.gz",
        gzip.compress(later),
        ContentType="application/gzip",
        Metadata={"owner": "finance"},
        Tagging="retain=7y&source=erp",
    )
    for body in (b"one", b"two"):
        await put(stack, f"{base}notes.txt", body)
    await asyncio.to_thread(s3.delete_object, Bucket="raw", Key=f"{base}notes.txt")
    await multipart(stack, f"{base}blob.bin", PART + 1024)
    await lake_built(stack, raw)
    before = await asyncio.to_thread(lake_of, s3, tag)
    assert len([k for k in before if k.startswith("staging/")]) == 4  # 2 Parquet, 2 rejects
    assert before["total"]
    original = histories(s3, "raw", base)
    assert [len(original[k]) for k in sorted(original)] == [2, 1, 1, 3]

    # Backup: the three lake buckets, the tag's keys; raw keeps its versions in order.
    scope = [
        "--prefix",
        base,
        "--prefix",
        f"_rejected/{base}",
        "--prefix",
        f"orders/_partials/{tag}/",
    ]
    buckets = [arg for b in LAKE for arg in ("--bucket", b)]
    backup = ["backup", "--to", f"http://{ADDRESS}", *buckets, *scope]
    report = await cli(stack.settings, *backup)
    assert report["buckets"]["raw"] == {
        "versioned": True,
        "keys": 4,
        "copied": 6,
        "delete_markers": 1,
        "already_there": 0,
        "bytes": report["buckets"]["raw"]["bytes"],
    }
    assert second.get_bucket_versioning(Bucket="raw")["Status"] == "Enabled"
    assert histories(second, "raw", base) == original  # same ETags, multipart's too
    assert described(second, "raw", f"{base}b.csv.gz") == described(s3, "raw", f"{base}b.csv.gz")
    for bucket in ("staging", "curated"):
        assert report["buckets"][bucket]["versioned"] is False
        for prefix in (f"orders/{tag}/", f"_rejected/orders/{tag}/", f"orders/_partials/{tag}/"):
            for key in keys(s3, bucket, prefix):
                assert described(second, bucket, key) == described(s3, bucket, key)
    again = await cli(stack.settings, *backup)  # incremental: nothing new to copy
    assert {
        b: (r["copied"], r["delete_markers"]) for b, r in again["buckets"].items()
    } == dict.fromkeys(LAKE, (0, 0))
    assert again["buckets"]["raw"]["already_there"] == 7

    # Lose the lake's data: raw with its history, what it derived, and the result records.
    for bucket, prefix in [
        ("raw", base),
        ("staging", f"orders/{tag}/"),
        ("staging", f"_rejected/orders/{tag}/"),
        ("curated", f"orders/_partials/{tag}/"),
    ]:
        assert await asyncio.to_thread(drop, s3, bucket, prefix) > 0
    for key, staged in [(f"{base}a.csv", "a"), (f"{base}b.csv.gz", "b")]:
        for function, source in (("to_staging", key), ("to_curated", f"{base}{staged}.parquet")):
            # The record and everything else the invocations kept beside it.
            assert await asyncio.to_thread(drop, s3, "job-outputs", output_prefix(function, source))
    assert keys(s3, "staging", base) == []

    # Restore raw alone, as into a store whose notification rules are not in place yet
    # (`init` runs after a restore): no event runs a function, so backfill alone
    # rebuilds staging and then curated (staging's own events drive to_curated).
    with no_events(s3, "raw"):
        restored = await cli(
            stack.settings,
            "restore",
            "--from",
            f"http://{ADDRESS}",
            "--bucket",
            "raw",
            "--prefix",
            base,
        )
    raw_report = restored["buckets"]["raw"]
    assert (raw_report["copied"], raw_report["delete_markers"]) == (6, 1)
    assert histories(s3, "raw", base) == original
    assert described(s3, "raw", f"{base}b.csv.gz") == described(second, "raw", f"{base}b.csv.gz")
    filled = await cli(stack.settings, "backfill", "--bucket", "raw", "--prefix", base)
    # a.csv and b.csv.gz; the other two match no route. Nothing was done before.
    assert (filled["to_staging"]["listed"], filled["to_staging"]["enqueued"]) == (2, 2)
    current = {
        key: (await asyncio.to_thread(s3.head_object, Bucket="raw", Key=key))["VersionId"]
        for key in raw
    }
    assert set(current.values()).isdisjoint(raw.values())  # new versions: a true rebuild
    await lake_built(stack, current)

    after = await asyncio.to_thread(lake_of, s3, tag)
    assert sorted(after) == sorted(before)
    for name, was in before.items():
        assert after[name] == was, name
