"""Topology and confirmed publishing on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import urllib.request
from typing import Any
from urllib.parse import quote

import aio_pika
import orjson
import pytest

from functions import app as functions_app
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.errors import BrokerError
from runtime.core.settings import Settings
from runtime.engine.dispatcher import Dispatcher
from runtime.ops.deadletters import DeadLetters, select
from tests.unit.test_events import minio

# As infra/local/env.sh: the management port follows the stack (helper slots move it).
MANAGEMENT = f"http://127.0.0.1:{os.environ.get('RABBITMQ_MANAGEMENT_PORT', '15672')}/api"


def management(path: str) -> Any:
    req = urllib.request.Request(f"{MANAGEMENT}/{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def get_one(
    settings: Settings, queue: str, timeout: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel()
        q = await ch.get_queue(queue, ensure=False)
        deadline = time.monotonic() + timeout
        while (msg := await q.get(no_ack=False, fail=False)) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing arrived on {queue} within {timeout} s")
            await asyncio.sleep(0.05)
        await msg.ack()
        return msg


async def test_every_queue_is_a_durable_quorum_queue(settings: Settings, broker: Broker) -> None:
    expected = queue_arguments(settings, functions_app)
    assert settings.queues.function("csv_row_count") in expected
    for name, args in expected.items():
        info = management(f"queues/%2F/{quote(name, safe='')}")
        assert info["type"] == "quorum", name
        assert info["durable"] is True
        assert info["arguments"] == args


async def test_declare_is_idempotent(settings: Settings, broker: Broker) -> None:
    await broker.declare(settings, functions_app)
    await broker.declare(settings, functions_app)


async def test_exchange_matches_what_minio_declares(settings: Settings, broker: Broker) -> None:
    # MinIO re-declares the exchange before every publish with these exact
    # properties and no arguments; any mismatch closes its channel.
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel()
        await ch.declare_exchange(
            settings.exchange,
            aio_pika.ExchangeType(settings.exchange_type),
            durable=True,
            auto_delete=False,
            internal=False,
        )
    info = management(f"exchanges/%2F/{quote(settings.exchange, safe='')}")
    assert (info["type"], info["durable"], info["auto_delete"], info["arguments"]) == (
        settings.exchange_type,
        True,
        False,
        {},
    )


async def test_confirmed_publish_arrives(settings: Settings, broker: Broker) -> None:
    queue = settings.queues.dead_letter("csv_row_count")
    await broker.publish(queue, b'{"probe": 1}', message_id="m1")
    msg = await get_one(settings, queue)
    assert msg.body == b'{"probe": 1}'
    assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_publish_to_a_missing_queue_is_an_error_not_a_loss(broker: Broker) -> None:
    with pytest.raises(BrokerError, match="not confirmed"):
        await broker.publish("bucketfn-test.no-such-queue", b"x")


async def test_retry_tier_dead_letters_back_to_the_function_queue(
    settings: Settings, broker: Broker
) -> None:
    q = settings.queues
    t0 = time.monotonic()
    await broker.publish(q.retry("csv_row_count", 1000), b'{"back": true}', expiration_ms=300)
    msg = await get_one(settings, q.function("csv_row_count"))
    elapsed = time.monotonic() - t0
    assert msg.body == b'{"back": true}'
    assert 0.25 <= elapsed < 5


async def test_router_publishes_one_invocation_per_matching_function(
    settings: Settings, broker: Broker
) -> None:
    dispatcher = Dispatcher(functions_app, broker, settings.queues)
    invocations = await dispatcher.route(minio("uploads/x+y.csv"))
    assert [i.function for i in invocations] == ["csv_row_count"]
    msg = await get_one(settings, settings.queues.function("csv_row_count"))
    body = orjson.loads(msg.body)
    assert body["event"]["key"] == "uploads/x y.csv"
    assert body["attempt"] == 1
    assert await dispatcher.route(minio("elsewhere/x.csv")) == []


async def test_listing_a_dead_letter_queue_many_times_loses_nothing(
    settings: Settings, broker: Broker
) -> None:
    queue = settings.queues.ingress_dlq
    await broker.publish(queue, b"not an event at all", message_id="keep-me")
    store = DeadLetters(broker, settings, functions_app)
    for _ in range(25):  # past RabbitMQ 4's default quorum delivery limit of 20
        entries = [e for e in await store.entries() if e.id == "keep-me"]
        assert len(entries) == 1
    assert (await store.purge(select(["keep-me"]))) == ["keep-me"]


async def test_an_event_that_cannot_be_routed_is_dead_lettered_once_not_requeued(
    settings: Settings, broker: Broker
) -> None:
    # A route whose queue was never declared (a deploy without `bucketfn init`):
    # before, the dispatcher nacked with requeue at once — redelivered until the
    # delivery limit on RabbitMQ 3, for ever on RabbitMQ 4.
    from runtime import App, Context, ObjectEvent, Router
    from runtime.core.letters import IngressDeadLetter
    from runtime.ops.deadletters import Entry

    ghost = Router()

    @ghost.function(bucket="job-inputs", prefix="ghost/")
    async def ghost_fn(event: ObjectEvent, ctx: Context) -> None:
        return None

    q = settings.queues
    body = minio("ghost/a.csv")
    await broker.publish(q.ingress, body, message_id="ghost-1")
    dispatcher = Dispatcher(App([ghost]), broker, q)
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel()
        ingress = await ch.get_queue(q.ingress, ensure=False)
        deadline = time.monotonic() + 10
        while (msg := await ingress.get(no_ack=False, fail=False)) is None:
            assert time.monotonic() < deadline, "the event never reached the ingress"
            await asyncio.sleep(0.05)
        await dispatcher.handle(msg)
        assert msg.redelivered is False
        # Positive signal: it is in the ingress dead-letter queue, as it came, once.
        dead = await get_one(settings, q.ingress_dlq)
        assert dead.body == body
        entry = Entry.of(q.ingress_dlq, None, dead)
        assert isinstance(entry.letter, IngressDeadLetter)
        assert "rejected" in entry.reason and "could not route it" in entry.reason
        assert entry.letter.body == body  # what a replay sends back to the ingress
        assert await ingress.get(no_ack=False, fail=False) is None  # not back on the ingress


async def test_fan_out_publishes_never_share_a_message_id(
    settings: Settings, broker: Broker
) -> None:
    # aiormq matches a returned (unroutable) message to its publish by message id;
    # an event fanned out to two functions used to carry the event id on both.
    from runtime import App, Context, ObjectEvent, Router

    two = Router()

    @two.function(bucket="job-inputs", prefix="uploads/fan/")
    async def fan_a(event: ObjectEvent, ctx: Context) -> None:
        return None

    @two.function(bucket="job-inputs", prefix="uploads/fan/")
    async def fan_b(event: ObjectEvent, ctx: Context) -> None:
        return None

    app = App([two])
    await broker.declare(settings, app)
    try:
        await Dispatcher(app, broker, settings.queues).route(minio("uploads/fan/x.csv"))
        a = await get_one(settings, settings.queues.function("fan_a"))
        b = await get_one(settings, settings.queues.function("fan_b"))
        assert a.message_id and b.message_id and a.message_id != b.message_id
        event_ids = {m.headers["x-bucketfn-event-id"] for m in (a, b)}
        assert len(event_ids) == 1  # the event id travels in a header instead
    finally:
        from tests.servers import delete_queues

        # Only this test's function queues: the ingress and the rest are the session's.
        mine = [q for q in queue_arguments(settings, app) if ".fn.fan_" in q]
        await delete_queues(settings, mine)


async def test_a_publish_the_broker_never_confirms_fails_instead_of_hanging(
    settings: Settings,
) -> None:
    # Before: no deadline; during a memory alarm a handler's retry publish hung for
    # ever, holding its delivery and its slot of the prefetch.
    from pydantic import SecretStr

    from tests.servers import Relay, broker_address

    relay = Relay(broker_address(settings))
    await relay.start()
    quick = settings.model_copy(
        update={
            "amqp_url": SecretStr(f"amqp://guest:guest@127.0.0.1:{relay.port}/"),
            "publish_timeout": 1.0,
        }
    )
    try:
        async with Broker.connect(quick) as held:
            relay.hold()
            started = time.monotonic()
            with pytest.raises(BrokerError, match="not confirmed within 1 s"):
                await asyncio.wait_for(
                    held.publish(settings.queues.dead_letter("csv_row_count"), b"{}"), 10
                )
            assert time.monotonic() - started < 5
    finally:
        await relay.cut()
