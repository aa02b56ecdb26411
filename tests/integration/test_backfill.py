"""``backfill`` on real MinIO and RabbitMQ: interrupted, resumed, then nothing to do.

The route's prefix has no notification rule (it is bound after the uploads, as
when a function is added to a bucket that already has data), so only backfill
can bring these objects to the function. The unit tests cover the same resume
on in-memory fakes; here the checkpoint lives in MinIO, the messages in
RabbitMQ's quorum queue, and the real ``csv_row_count`` writes the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest

from functions.csv_count.count import csv_row_count
from runtime import App, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.process import serve
from runtime.ops.backfill import Scope, backfill
from runtime.ops.reconcile import Reconciler, Tally
from tests.servers import delete_queues, make_settings, require_rabbitmq, unique

pytestmark = pytest.mark.integration

FUNCTION = "backfill_rows"
router = Router()
router.function(bucket="job-inputs", prefix="backfill-it/", suffix=".csv", name=FUNCTION)(
    csv_row_count
)
APP = App([router])
N = 30
PAGE = 10  # backfill's page follows --rate: 10/s lists 10 keys a page


class Interrupted(Exception):
    """Stands in for Ctrl-C between two pages."""


@pytest.fixture
async def stack() -> AsyncIterator[tuple[Settings, S3Storage, Broker, str]]:
    settings = make_settings()
    await require_rabbitmq(settings)
    prefix = f"backfill-it/{unique()}/"
    async with S3Storage.connect(settings) as storage, Broker.connect(settings) as broker:
        await broker.declare(settings, APP)
        try:
            yield settings, storage, broker, prefix
        finally:
            for i in range(N):
                key = f"{prefix}{i:02d}.csv"
                for bucket, k in (
                    ("job-inputs", key),
                    (settings.output_bucket, result_key(FUNCTION, key)),
                ):
                    with contextlib.suppress(Exception):
                        await storage.delete(bucket, k)
            await delete_queues(settings, list(queue_arguments(settings, APP)))


async def _depth(settings: Settings) -> int:
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(settings.queues.function(FUNCTION), passive=True)
        return q.declaration_result.message_count or 0


async def _results(storage: S3Storage, settings: Settings, prefix: str) -> dict[str, int]:
    """Rows per source key, from every result.json written so far."""
    found: dict[str, int] = {}
    out = f"{FUNCTION}/{prefix}"
    async for info in storage.list(settings.output_bucket, out):
        if info.key.endswith("/result.json"):
            body = b"".join([c async for c in storage.stream(settings.output_bucket, info.key)])
            doc = orjson.loads(body)
            found[doc["source"]["key"]] = doc["output"]["rows"]
    return found


async def test_an_interrupted_backfill_resumes_and_a_rerun_enqueues_nothing(
    stack: tuple[Settings, S3Storage, Broker, str],
) -> None:
    settings, storage, broker, prefix = stack
    for i in range(N):  # i + 1 data rows each
        body = b"n\n" + b"".join(b"%d\n" % r for r in range(i + 1))
        await storage.put("job-inputs", f"{prefix}{i:02d}.csv", body)
    rec = Reconciler(storage, broker, settings.queues, settings.output_bucket)
    scope = Scope(function=FUNCTION, prefix=prefix)

    def stop_after_two_pages(name: str, tally: Tally) -> None:
        if tally.enqueued >= 2 * PAGE:
            raise Interrupted

    with contextlib.suppress(Interrupted):
        await backfill(
            APP.routes,
            settings,
            storage,
            rec,
            scope=scope,
            rate=PAGE,
            progress=stop_after_two_pages,
        )
    assert await _depth(settings) == 2 * PAGE
    # The checkpoint is in MinIO, so a new process resumes where this one stopped.
    resumed = await backfill(APP.routes, settings, storage, rec, scope=scope)
    assert (resumed[FUNCTION].listed, resumed[FUNCTION].enqueued) == (N - 2 * PAGE, N - 2 * PAGE)
    assert await _depth(settings) == N  # every object once, none twice

    # The real function drains the queue.
    stop, ready = asyncio.Event(), asyncio.Event()
    runtime = asyncio.create_task(serve(APP, settings, stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        deadline = time.monotonic() + 60
        while len(found := await _results(storage, settings, prefix)) < N:
            assert time.monotonic() < deadline, f"{len(found)} of {N} results"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(runtime, 60)
    assert found == {f"{prefix}{i:02d}.csv": i + 1 for i in range(N)}

    again = await backfill(APP.routes, settings, storage, rec, scope=scope)
    assert (again[FUNCTION].listed, again[FUNCTION].done, again[FUNCTION].enqueued) == (N, N, 0)
    assert await _depth(settings) == 0
