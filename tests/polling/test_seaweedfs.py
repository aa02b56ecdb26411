"""Polling mode, end to end on SeaweedFS: no notification target, only the sweep.

SeaweedFS publishes no bucket events to RabbitMQ, so nothing but the
reconciliation sweep can find an upload: it lists the route's prefix beside the
function's result records and enqueues what has no current result, and the
ordinary worker runs the real ``csv_row_count`` on it. The runtime runs in this
process (its own queue prefix) against SeaweedFS for S3 and the usual RabbitMQ;
the uploads are plain boto3, as a user's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from pydantic import SecretStr

from functions import csv_count
from runtime import App, ObjectEvent
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.observer import Observer
from runtime.engine.process import serve
from runtime.ops.sweep import sweeping
from tests.servers import delete_queues, make_settings, require_rabbitmq, s3_client, unique

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

# The real function and its real route (job-inputs/uploads/*.csv), alone: the
# lake's routes would need buckets this test has no use for.
APP = App([csv_count.router])
FUNCTION = "csv_row_count"
INTERVAL = 1.0  # seconds between sweep passes
# Upload → result.json: at most one interval of waiting, then a pass (two
# listings and a HEAD), a publish and one invocation; the rest is slack for a
# loaded two-core CI machine.
BOUND = INTERVAL + 9.0
CSV = b'id,note\n1,"two\nlines"\n2,plain\n'
REWRITTEN = b"id\n1\n2\n3\n"
HINT = "start it with `make polling` (or `infra/local/seaweedfs.sh start`)"


def seaweedfs_settings() -> Settings:
    """This run's settings: S3 is SeaweedFS (infra/local/env.sh's defaults), queues our own."""
    host = os.environ.get("SEAWEEDFS_HOST", "127.0.0.1")
    port = os.environ.get("SEAWEEDFS_S3_PORT", "8333")
    return make_settings().model_copy(
        update={
            "s3_endpoint": f"http://{host}:{port}",
            "s3_access_key": os.environ.get("SEAWEEDFS_ACCESS_KEY", "bucketfn"),
            "s3_secret_key": SecretStr(
                os.environ.get("SEAWEEDFS_SECRET_KEY", "bucketfn-seaweedfs")
            ),
            "sweep_interval": INTERVAL,
            "sweep_grace": 0.0,
        }
    )


class Heals(Observer):
    """Records the keys the sweep enqueued."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def healed(self, function: str, event: ObjectEvent, age: float | None) -> None:
        self.keys.append(event.key)


@dataclass
class Polling:
    settings: Settings
    s3: S3Client
    heals: Heals
    keys: list[str] = field(default_factory=list)

    async def upload(self, key: str, body: bytes) -> str:
        """PUT with plain boto3; returns the object's etag (unquoted)."""
        self.keys.append(key)
        resp = await asyncio.to_thread(self.s3.put_object, Bucket="job-inputs", Key=key, Body=body)
        return resp["ETag"].strip('"')


async def _require_seaweedfs(settings: Settings) -> None:
    """Fail (never skip) when SeaweedFS does not answer a signed request."""
    try:
        async with S3Storage.connect(settings) as storage:
            await storage.client.list_buckets()
    except Exception as exc:
        pytest.fail(
            f"SeaweedFS is not reachable at {settings.s3_endpoint} ({exc}); {HINT}", pytrace=False
        )


@pytest.fixture(scope="module")
async def polling() -> AsyncIterator[Polling]:
    settings = seaweedfs_settings()
    await require_rabbitmq(settings)
    await _require_seaweedfs(settings)
    async with S3Storage.connect(settings) as storage:
        for bucket in ("job-inputs", settings.output_bucket):
            await storage.ensure_bucket(bucket, versioned=False)
    heals = Heals()
    stop, ready = asyncio.Event(), asyncio.Event()
    runtime = asyncio.create_task(serve(APP, settings, stop, ready=ready))
    sweeper = asyncio.create_task(sweeping(APP, settings, stop, observer=heals))
    done, _ = await asyncio.wait(
        {runtime, asyncio.create_task(ready.wait())},
        timeout=30,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if runtime in done:
        runtime.result()  # raises the startup error
    state = Polling(settings=settings, s3=s3_client(settings), heals=heals)
    try:
        yield state
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(runtime, sweeper), 60)
        await delete_queues(settings, list(queue_arguments(settings, APP)))
        await asyncio.to_thread(_clean, state)


def _clean(state: Polling) -> None:
    s3, out = state.s3, state.settings.output_bucket
    for key in state.keys:
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket="job-inputs", Key=key)
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=out, Key=result_key(FUNCTION, key))
    with contextlib.suppress(Exception):
        s3.delete_object(Bucket=out, Key=state.settings.queues.checkpoint(FUNCTION))


async def _result(
    state: Polling, key: str, accept: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], float]:
    """Poll until the key's result.json exists and ``accept``s; returns it and the wait."""
    t0 = time.monotonic()
    rkey = result_key(FUNCTION, key)
    out = state.settings.output_bucket

    def get() -> dict[str, Any] | None:
        try:
            body = state.s3.get_object(Bucket=out, Key=rkey)["Body"].read()
        except state.s3.exceptions.NoSuchKey:
            return None
        doc: dict[str, Any] = orjson.loads(body)
        return doc

    while True:
        doc = await asyncio.to_thread(get)
        waited = time.monotonic() - t0
        if doc is not None and accept(doc):
            return doc, waited
        if waited > BOUND:
            pytest.fail(f"no accepted {out}/{rkey} within {BOUND} s (last: {doc})", pytrace=False)
        await asyncio.sleep(0.05)


def _for(etag: str) -> Callable[[dict[str, Any]], bool]:
    """Accept the result of the write with this etag only."""
    return lambda doc: bool(doc["source"]["etag"] == etag)


def _any(doc: dict[str, Any]) -> bool:
    """Accept any result."""
    return True


async def test_a_csv_uploaded_to_seaweedfs_gets_its_result(
    polling: Polling, record_property: Callable[[str, object], None]
) -> None:
    # A space in the key (URL-encoding in listings) and a quoted newline in the
    # data (a line count would say 3 records).
    key = f"uploads/polling-{unique()}/sales 2026.csv"
    etag = await polling.upload(key, CSV)
    result, waited = await _result(polling, key, _any)
    record_property("upload_to_result_s", round(waited, 3))

    assert result["status"] == "ok", result
    assert result["function"] == FUNCTION
    assert result["output"] == {"rows": 2, "columns": ["id", "note"], "bytes": len(CSV)}
    assert result["source"]["bucket"] == "job-inputs"
    assert result["source"]["key"] == key
    assert result["source"]["etag"] == etag
    assert result["attempts"] == 1
    # No event exists on SeaweedFS: the sweep found it.
    assert key in polling.heals.keys


async def test_upload_to_result_latency_over_several_objects(
    polling: Polling, record_property: Callable[[str, object], None]
) -> None:
    waits: list[float] = []
    for i in range(5):
        key = f"uploads/polling-{unique()}/batch-{i}.csv"
        body = b"a,b\n" + b"".join(b'%d,"x\ny"\n' % n for n in range(i + 1))
        await polling.upload(key, body)
        result, waited = await _result(polling, key, _any)
        assert result["status"] == "ok" and result["output"]["rows"] == i + 1, result
        waits.append(waited)
        await asyncio.sleep(0.37 * i)  # spread the uploads over the sweep's phase
    record_property("upload_to_result_p50_s", round(statistics.median(waits), 3))
    record_property("upload_to_result_max_s", round(max(waits), 3))
    record_property("upload_to_result_all_s", [round(w, 3) for w in waits])


def _modified(s3: S3Client, bucket: str, key: str) -> datetime:
    """An object's Last-Modified as its listing says (what the sweep compares)."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    return next(o["LastModified"] for o in listing["Contents"] if o["Key"] == key)


async def test_a_rewritten_object_gets_a_new_result(polling: Polling) -> None:
    # Polling mode must see changes, not only new keys: the record of the first
    # write predates the second, so the sweep runs the function again.
    key = f"uploads/polling-{unique()}/rewritten.csv"
    first = await polling.upload(key, CSV)
    result, _ = await _result(polling, key, _for(first))
    assert result["output"]["rows"] == 2
    # SeaweedFS lists Last-Modified in whole seconds: rewrite in a later second
    # than the record's (the same second is the next test).
    out = polling.settings.output_bucket
    recorded = await asyncio.to_thread(_modified, polling.s3, out, result_key(FUNCTION, key))
    await asyncio.sleep(max(0.0, recorded.timestamp() + 1.05 - time.time()))
    second = await polling.upload(key, REWRITTEN)
    result, _ = await _result(polling, key, _for(second))
    assert result["status"] == "ok"
    assert result["output"] == {"rows": 3, "columns": ["id"], "bytes": len(REWRITTEN)}


class StaleResult(AssertionError):
    """The rewrite never got its result: the sweep took the old record for current."""


async def test_a_rewrite_in_the_same_second_as_the_record_gets_a_new_result(
    polling: Polling,
) -> None:
    out = polling.settings.output_bucket
    for attempt in range(5):
        key = f"uploads/polling-{unique()}/same-second-{attempt}.csv"
        first = await polling.upload(key, CSV)
        await _result(polling, key, _for(first))
        # The record's time before the rewrite: once the rewrite is swept, a
        # new record may share its second, which would not be the case here.
        recorded = await asyncio.to_thread(_modified, polling.s3, out, result_key(FUNCTION, key))
        second = await polling.upload(key, REWRITTEN)
        if await asyncio.to_thread(_modified, polling.s3, "job-inputs", key) == recorded:
            break  # a tie at the store's precision: the case under test
    else:
        pytest.fail("could not rewrite an object in the same second as its record", pytrace=False)
    try:
        await _result(polling, key, _for(second))
    except pytest.fail.Exception as exc:
        raise StaleResult(str(exc)) from exc
