"""Metrics and health endpoints of a real runtime, on real RabbitMQ and MinIO.

The runtime reaches RabbitMQ through a small TCP relay this test owns, so
cutting its connection is exact and touches no other test's connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aio_pika
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.health import Health
from runtime.engine.process import serve
from runtime.http import Metrics, QueueStats, running
from tests.servers import (
    Relay,
    broker_address,
    delete_queues,
    make_settings,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
    wait_for_object,
)
from tests.unit.test_events import minio

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = unique("health")
router = Router()


@router.function(bucket="job-inputs", prefix=f"{PREFIX}/", name="health_probe")
async def health_probe(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    return {"bytes": sum([len(c) async for c in ctx.read(event)])}


APP = App([router])


@dataclass
class Runtime:
    settings: Settings
    health: Health
    metrics: Metrics
    http: httpx.AsyncClient
    relay: Relay
    s3: S3Client
    written: list[tuple[str, str]]  # (bucket, key) to delete afterwards


def ensure_bucket(client: S3Client, bucket: str) -> None:
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    base = make_settings()
    await require_rabbitmq(base)
    client = s3_client(base)
    require_minio(client)
    for bucket in ("job-inputs", base.output_bucket):
        ensure_bucket(client, bucket)
    relay = Relay(broker_address(base))
    await relay.start()
    settings = base.model_copy(
        update={
            "amqp_url": SecretStr(f"amqp://guest:guest@127.0.0.1:{relay.port}/"),
            "shutdown_grace": 5,
            "metrics_address": "127.0.0.1:0",
        }
    )
    health = Health(storage_max_age=10)
    metrics = Metrics([r.name for r in APP.routes])
    queues = QueueStats(settings, APP, registry=metrics.registry, every=0.2)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving: asyncio.Task[None] | None = None
    written: list[tuple[str, str]] = []
    try:
        async with (
            running(settings, metrics, health, queues=queues) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
        ):
            rt = Runtime(settings, health, metrics, http, relay, client, written)
            # Before the engine starts: alive, not ready, and saying why.
            assert (await http.get("/healthz")).status_code == 200
            early = await http.get("/readyz")
            assert early.status_code == 503
            assert "rabbitmq: not connected" in early.json()["missing"]

            serving = asyncio.create_task(
                serve(APP, settings, stop, ready=ready, observers=(metrics,), health=health)
            )
            done, _ = await asyncio.wait(
                {serving, asyncio.create_task(ready.wait())},
                timeout=30,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if serving in done:
                serving.result()
            yield rt
            stop.set()
            await asyncio.wait_for(serving, 30)
            # Drained and stopped, still listening: the probe says so.
            assert (await http.get("/readyz")).status_code == 503
    finally:
        stop.set()
        if serving is not None and not serving.done():
            serving.cancel()
        with contextlib.suppress(Exception):
            await relay.cut()
        for bucket, key in written:
            client.delete_object(Bucket=bucket, Key=key)
        await delete_queues(base, list(queue_arguments(base, APP)))


async def until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if result := await check():
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.1)


async def samples(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = await http.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }


async def ready(rt: Runtime) -> httpx.Response | None:
    response = await rt.http.get("/readyz")
    return response if response.status_code == 200 else None


async def publish_event(rt: Runtime, key: str, data: bytes) -> None:
    """Store an object and send the ingress the event MinIO would have sent for it."""
    put = rt.s3.put_object(Bucket="job-inputs", Key=key, Body=data)
    rt.written.append(("job-inputs", key))
    body: dict[str, Any] = orjson.loads(minio(key))
    record = body["Records"][0]
    record["eventTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    record["s3"]["object"].update({"eTag": put["ETag"].strip('"'), "size": len(data)})
    conn = await aio_pika.connect(rt.settings.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(orjson.dumps(body), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=rt.settings.queues.ingress,
        )


async def test_ready_metrics_move_and_readiness_follows_the_broker(runtime: Runtime) -> None:
    rt, q = runtime, runtime.settings.queues
    body = (await until(lambda: ready(rt), "/readyz 200")).json()
    assert body["ready"] is True
    # The dispatcher consumes the ingress and the alternate exchange's unrouted queue.
    assert set(body["queues"]) == {q.ingress, q.unrouted, q.function("health_probe")}

    key = f"{PREFIX}/a.txt"
    rt.written.append((rt.settings.output_bucket, result_key("health_probe", key)))
    await publish_event(rt, key, b"twelve bytes")
    await publish_event(rt, f"elsewhere-{PREFIX}/b.txt", b"no route")
    record = await wait_for_object(
        rt.s3, rt.settings.output_bucket, result_key("health_probe", key)
    )
    assert record["output"] == {"bytes": 12}

    fn = (("function", "health_probe"),)

    async def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        seen = await samples(rt.http)
        done = seen.get(("bucketfn_invocations_total", (*fn, ("outcome", "ok"))))
        unmatched = seen.get(("bucketfn_events_total", (("result", "unmatched"),)))
        return seen if done == 1 and unmatched == 1 else None

    seen = await until(moved, "the invocation and the unmatched event in /metrics")
    assert seen[("bucketfn_events_total", (("result", "routed"),))] == 1
    assert seen[("bucketfn_routed_total", fn)] == 1
    assert seen[("bucketfn_invocation_duration_seconds_count", fn)] == 1
    assert seen[("bucketfn_event_lag_seconds_count", fn)] == 1
    assert seen[("bucketfn_inflight_invocations", fn)] == 0
    assert ("bucketfn_event_loop_lag_seconds", ()) in seen

    async def consumers() -> bool:
        seen = await samples(rt.http)
        return seen.get(("bucketfn_queue_consumers", (("queue", q.ingress),))) == 1

    await until(consumers, "queue figures in /metrics")
    seen = await samples(rt.http)
    assert seen[("bucketfn_queue_consumers", (("queue", q.function("health_probe")),))] == 1
    assert seen[("bucketfn_queue_messages", (("queue", q.dead_letter("health_probe")),))] == 0

    # The connection drops: not ready, and saying why; still alive.
    await rt.relay.cut()

    async def not_ready() -> httpx.Response | None:
        response = await rt.http.get("/readyz")
        return response if response.status_code == 503 else None

    lost = await until(not_ready, "/readyz 503 after the broker was lost")
    assert "rabbitmq: not connected" in lost.json()["missing"]
    assert (await rt.http.get("/healthz")).status_code == 200

    # It comes back: ready again, on a new connection.
    await rt.relay.start()
    await until(lambda: ready(rt), "/readyz 200 after the broker came back", timeout=60)
