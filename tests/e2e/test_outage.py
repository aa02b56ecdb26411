"""A RabbitMQ outage loses nothing, in either profile.

Durable profile: MinIO keeps the event in its queue_dir and delivers it later.
Fast profile (the default): MinIO drops the event, and the sweep heals it. The
test runs its own deployment (unique queue prefix, its own route and rule) with
a short sweep interval, so the assertion holds whichever way MinIO was started.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.process import serve
from runtime.ops.provision import init
from runtime.ops.sweep import sweeping
from tests.servers import (
    delete_queues,
    make_settings,
    remove_rules,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
    wait_for_object,
)

RABBITMQ = Path(__file__).resolve().parents[2] / "infra/local/rabbitmq.sh"
PREFIX = f"e2e-outage-{unique()}/"
router = Router()


@router.function(bucket="job-inputs", prefix=PREFIX)
async def outage_size(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    return {"size": sum([len(c) async for c in ctx.read(event)])}


APP = App([router])


def _rabbitmq(action: str) -> None:
    subprocess.run([str(RABBITMQ), action], check=True)


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    s = make_settings().model_copy(update={"sweep_interval": 1.0, "sweep_grace": 2.0})
    await require_rabbitmq(s)
    require_minio(s3_client(s))
    await init(APP, s)
    yield s
    await remove_rules(s, {"job-inputs"})
    await delete_queues(s, list(queue_arguments(s, APP)))


async def test_an_upload_during_a_broker_outage_is_processed_after_it(settings: Settings) -> None:
    s3 = s3_client(settings)
    key = f"{PREFIX}during-outage.bin"
    stop, ready = asyncio.Event(), asyncio.Event()
    runtime = asyncio.create_task(serve(APP, settings, stop, ready=ready))
    sweeper = asyncio.create_task(sweeping(APP, settings, stop))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.to_thread(_rabbitmq, "stop")
        try:
            await asyncio.to_thread(s3.put_object, Bucket="job-inputs", Key=key, Body=b"abc")
        finally:
            await asyncio.to_thread(_rabbitmq, "start")
        # The runtime's connection and consumers come back on their own; the event
        # comes from MinIO's queue_dir (durable) or the sweep (fast).
        result = await wait_for_object(s3, "job-outputs", result_key("outage_size", key), 90)
        assert result["status"] == "ok"
        assert result["output"] == {"size": 3}
        conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
        async with conn:
            channel = await conn.channel()
            for name in (settings.queues.ingress, settings.queues.function("outage_size")):
                queue = await channel.declare_queue(name, passive=True)
                assert (queue.declaration_result.consumer_count or 0) >= 1, name
    finally:
        stop.set()
        await asyncio.gather(runtime, sweeper, return_exceptions=True)
        await asyncio.to_thread(s3.delete_object, Bucket="job-inputs", Key=key)
