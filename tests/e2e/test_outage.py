"""A RabbitMQ outage loses nothing: MinIO keeps the event, the runtime reconnects."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aio_pika
import pytest

from runtime.core.names import result_key
from tests.e2e.conftest import Stack
from tests.servers import unique, wait_for_object

RABBITMQ = Path(__file__).resolve().parents[2] / "infra/local/rabbitmq.sh"


def _rabbitmq(action: str) -> None:
    subprocess.run([str(RABBITMQ), action], check=True)


async def test_an_upload_during_a_broker_outage_is_processed_after_it(stack: Stack) -> None:
    if os.environ.get("BUCKETFN_PROFILE") == "fast":
        pytest.skip("the fast profile has no queue_dir: MinIO drops events while RabbitMQ is down")
    key = f"uploads/{unique()}/during-outage.csv"
    await asyncio.to_thread(_rabbitmq, "stop")
    try:
        await asyncio.to_thread(
            stack.s3.put_object, Bucket="job-inputs", Key=key, Body=b"a\n1\n2\n"
        )
        await asyncio.sleep(2)  # MinIO tries, fails, and keeps the event in its queue_dir
    finally:
        await asyncio.to_thread(_rabbitmq, "start")
    # The runtime's connection and consumers come back on their own.
    result = await wait_for_object(stack.s3, "job-outputs", result_key("csv_row_count", key), 90)
    assert result["status"] == "ok"
    assert result["output"]["rows"] == 2
    # And this deployment's own consumers are back (another runtime on the same
    # broker could have produced the result above).
    conn = await aio_pika.connect(stack.settings.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel()
        for name in (
            stack.settings.queues.ingress,
            stack.settings.queues.function("csv_row_count"),
        ):
            queue = await channel.declare_queue(name, passive=True)
            assert (queue.declaration_result.consumer_count or 0) >= 1, name
