"""Events the exchange cannot route, and ingress garbage too large to re-wrap, on real servers.

A runtime of its own, on an events exchange and routing key of its own, so
unbinding its ingress touches nothing a live MinIO or another test sends; its
one function covers a prefix no notification rule does, so the events it sees
are the ones published here, and no other runtime writes their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.core.letters import IngressDeadLetter
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.process import serve
from runtime.ops import access
from runtime.ops.deadletters import DeadLetters, Entry, select
from tests.e2e.conftest import Seen
from tests.integration.test_access import cleanup
from tests.servers import (
    make_settings,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
    wait_for_object,
)
from tests.unit.test_events import minio

pytestmark = pytest.mark.e2e
PREFIX = "e2e-unrouted/"
router = Router()


@router.function(bucket="job-inputs", prefix=PREFIX)
async def unrouted_size(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    size = 0
    async for chunk in ctx.read(event):
        size += len(chunk)
    return {"size": size}


APP = App([router])
FN = "unrouted_size"


class Deployment:
    def __init__(self, settings: Settings, seen: Seen) -> None:
        self.settings = settings
        self.seen = seen
        self.s3 = s3_client(settings)

    def upload(self, key: str, body: bytes) -> bytes:
        """Put an object; return the event MinIO would send for it."""
        put = self.s3.put_object(Bucket="job-inputs", Key=key, Body=body)
        event = orjson.loads(minio(key.replace(" ", "+")))
        obj = event["Records"][0]["s3"]["object"]
        obj.update(eTag=put["ETag"].strip('"'), size=len(body))
        del obj["sequencer"]
        return orjson.dumps(event)

    async def ok(self, key: str) -> dict[str, Any]:
        await self.seen.until(lambda: (FN, key, "ok") in self.seen.outcomes, timeout=60)
        return await wait_for_object(self.s3, "job-outputs", result_key(FN, key))

    async def letters(self, match: str, timeout: float = 60) -> list[Entry]:
        """Ingress dead letters whose reason contains ``match`` (polled until one is)."""
        deadline = time.monotonic() + timeout
        async with Broker.connect(self.settings) as broker:
            store = DeadLetters(broker, self.settings, APP)
            while True:
                found = [e for e in await store.entries() if match in e.reason]
                if found:
                    return found
                assert time.monotonic() < deadline, f"no dead letter with {match!r}"
                await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
async def deployment() -> AsyncIterator[Deployment]:
    s = make_settings()
    s = s.model_copy(
        update={"exchange": f"{s.queue_prefix}.events", "routing_key": f"{s.queue_prefix}.in"}
    )
    await require_rabbitmq(s)
    require_minio(s3_client(s))
    # What init does on the broker; no notification rules: nothing but these tests'
    # own publishes may reach this deployment.
    async with Broker.connect(s) as broker:
        await broker.declare(s, APP)
    await access.provision(s)
    async with S3Storage.connect(s) as storage:
        for bucket in ("job-inputs", s.output_bucket):
            await storage.ensure_bucket(bucket, versioned=False)
    stop, ready, seen = asyncio.Event(), asyncio.Event(), Seen()
    task = asyncio.create_task(serve(APP, s, stop, ready=ready, observers=(seen,)))
    await asyncio.wait_for(ready.wait(), 30)
    yield Deployment(s, seen)
    stop.set()
    await asyncio.wait_for(task, 60)
    await cleanup(s, list(queue_arguments(s, APP)))


@contextlib.asynccontextmanager
async def events_channel(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel publishing to the events exchange as MinIO does: confirmed and mandatory."""
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        yield await conn.channel(publisher_confirms=True, on_return_raises=True)


async def publish_event(settings: Settings, body: bytes, routing_key: str) -> None:
    async with events_channel(settings) as ch:
        exchange = await ch.get_exchange(settings.exchange, ensure=False)
        # mandatory: without the alternate exchange this is returned (DeliveryError
        # here); MinIO ignores returns, and that event would be lost.
        await exchange.publish(aio_pika.Message(body), routing_key=routing_key, mandatory=True)


async def test_an_event_sent_while_the_ingress_is_unbound_is_still_processed(
    deployment: Deployment,
) -> None:
    s = deployment.settings
    key = f"{PREFIX}{unique()}/while-unbound.csv"
    event = deployment.upload(key, b"h\n1\n2\n")
    async with events_channel(s) as ch:
        ingress = await ch.get_queue(s.queues.ingress, ensure=False)
        await ingress.unbind(s.exchange, routing_key=s.routing_key)
    try:
        await publish_event(s, event, s.routing_key)
        result = await deployment.ok(key)
    finally:
        async with events_channel(s) as ch:
            ingress = await ch.get_queue(s.queues.ingress, ensure=False)
            await ingress.bind(s.exchange, routing_key=s.routing_key)
    assert result["output"]["size"] == 6


async def test_an_event_no_deployment_binds_is_a_dead_letter_that_replays(
    deployment: Deployment,
) -> None:
    s = deployment.settings
    key = f"{PREFIX}{unique()}/nobody-binds.csv"
    event = deployment.upload(key, b"h\n1\n")
    stray = f"nobody-{unique()}"
    await publish_event(s, event, stray)
    [entry] = await deployment.letters(stray)
    assert entry.kind == "ingress"
    assert entry.reason.startswith("unroutable")
    assert isinstance(entry.letter, IngressDeadLetter)
    assert entry.letter.body == event  # the raw body, as MinIO sent it
    async with Broker.connect(s) as broker:
        report = await DeadLetters(broker, s, APP).replay(select([entry.id]))
    assert report.replayed == [entry.id]
    result = await deployment.ok(key)
    assert result["output"]["size"] == 4


async def garbage_size(settings: Settings) -> int:
    """A size whose raw body the broker takes but whose JSON re-wrapping it refuses.

    RabbitMQ's maximum message size is 128 MiB by default on 3.10 and 16 MiB on
    4.x; a fifth of it fits raw and exceeds it as 6-byte escapes. A broker
    refusing a fifth of 128 MiB states its own maximum, which is used instead.
    """
    size = 128 * 1024 * 1024 // 5
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        probe = await ch.declare_queue(exclusive=True)
        try:
            await ch.default_exchange.publish(
                aio_pika.Message(b"\x01" * size), routing_key=probe.name
            )
        except Exception as exc:
            refused = str(exc)
        else:
            return size
    found = re.search(r"max size (\d+)", refused)
    if found is None:
        pytest.fail(f"the broker refused the probe for another reason: {refused}")
    return int(found.group(1)) // 5


async def test_a_huge_garbage_ingress_message_is_kept_raw_and_the_runtime_goes_on(
    deployment: Deployment,
) -> None:
    s = deployment.settings
    # U+0001 bytes: valid UTF-8 but not JSON. Re-wrapped as JSON text, each became a
    # 6-byte escape: past the broker's maximum message size, while the raw body fits.
    garbage = b"\x01" * await garbage_size(s)
    async with Broker.connect(s) as broker:
        await broker.publish(s.queues.ingress, garbage)
    [entry] = await deployment.letters("not JSON", timeout=120)
    assert isinstance(entry.letter, IngressDeadLetter)
    assert entry.letter.body == garbage
    assert entry.record["size"] == len(garbage)
    assert len(entry.record["body_preview"]) <= 4096  # what `dlq show` prints stays bounded
    # The dispatcher's session survived: the next event is processed.
    key = f"{PREFIX}{unique()}/after-huge.csv"
    event = deployment.upload(key, b"h\n1\n")
    async with Broker.connect(s) as broker:
        await broker.publish(s.queues.ingress, event)
        purged = await DeadLetters(broker, s, APP).purge(select([entry.id]))
    assert purged == [entry.id]
    assert (await deployment.ok(key))["output"]["size"] == 4
