"""``bucketfn_deadletter_oldest_age_seconds`` on real RabbitMQ: right ages, nothing moved.

The gauge reads each dead-letter queue whole and gives every entry back in
order (as ``bucketfn status`` does); these tests check the ages it reports
and that the queue holds the same entries in the same order afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.core.records import dumps
from runtime.core.settings import Settings
from runtime.engine.health import Health
from runtime.http import Metrics, QueueStats, running
from tests.servers import dead_letter, declared, make_settings, queue_contents, require_rabbitmq

pytestmark = pytest.mark.integration

router = Router()


@router.function(bucket="job-inputs", prefix="age/", name="age_probe")
async def age_probe(event: ObjectEvent, ctx: Context) -> None:
    return None


APP = App([router])
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AGE = "bucketfn_deadletter_oldest_age_seconds"


@pytest.fixture
async def deployment() -> AsyncIterator[tuple[Settings, Broker]]:
    settings = make_settings()
    await require_rabbitmq(settings)
    async with declared(settings, APP) as broker:
        yield settings, broker


async def put(broker: Broker, settings: Settings, n: int, age: timedelta) -> None:
    dl = dead_letter("age_probe", n, NOW - age, f"n{n}")
    await broker.publish(settings.queues.dead_letter("age_probe"), dumps(dl), message_id=dl.id)


def sample(registry: CollectorRegistry, queue: str) -> float | None:
    return registry.get_sample_value(AGE, {"queue": queue})


async def test_ages_are_right_and_nothing_moves(deployment: tuple[Settings, Broker]) -> None:
    settings, broker = deployment
    q = settings.queues
    dlq = q.dead_letter("age_probe")
    registry = CollectorRegistry()
    stats = QueueStats(settings, APP, registry=registry, read=5, wall=lambda: NOW)

    # Empty: 0, for the function's and the ingress's dead-letter queues alike.
    await stats.refresh(broker)
    assert (sample(registry, dlq), sample(registry, q.ingress_dlq)) == (0.0, 0.0)
    # Work queues and delay tiers are not dead-letter queues: no age for them.
    assert sample(registry, q.function("age_probe")) is None

    # Out of time order on purpose: the oldest is neither the head nor the tail.
    for n, hours in enumerate((1, 3, 2)):
        await put(broker, settings, n, timedelta(hours=hours))
    before = await queue_contents(settings, dlq)
    await stats.refresh(broker)
    assert sample(registry, dlq) == 3 * 3600.0
    assert await queue_contents(settings, dlq) == before == ["ev-0-1-0", "ev-1-1-0", "ev-2-1-0"]

    # A new, older entry changes the depth, so the queue is read again.
    await put(broker, settings, 3, timedelta(hours=5))
    await stats.refresh(broker)
    assert sample(registry, dlq) == 5 * 3600.0

    # Longer than `read`: not read at all, and no sample rather than a stale age.
    await put(broker, settings, 4, timedelta(hours=1))
    await put(broker, settings, 5, timedelta(hours=1))
    before = await queue_contents(settings, dlq)
    await stats.refresh(broker)
    assert sample(registry, dlq) is None
    assert await queue_contents(settings, dlq) == before
    assert len(before) == 6


async def test_the_age_is_served_at_metrics(deployment: tuple[Settings, Broker]) -> None:
    # The whole path: the background refresh on its own connection, and a scrape.
    settings, broker = deployment
    dlq = settings.queues.dead_letter("age_probe")
    await put(broker, settings, 0, timedelta(0))
    served = settings.model_copy(update={"metrics_address": "127.0.0.1:0"})
    metrics = Metrics(["age_probe"])
    queues = QueueStats(served, APP, registry=metrics.registry, every=0.2)
    # The letter was dead-lettered at NOW (in the past): its age is wall time since.
    floor = (datetime.now(UTC) - NOW).total_seconds()
    async with (
        running(served, metrics, Health(), queues=queues) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
    ):
        deadline = time.monotonic() + 30
        ages: dict[str, float] = {}
        while dlq not in ages:
            assert time.monotonic() < deadline, "no dead-letter age in /metrics within 30 s"
            await asyncio.sleep(0.1)
            page = (await http.get("/metrics")).text
            ages = {
                s.labels["queue"]: s.value
                for f in text_string_to_metric_families(page)
                if f.name == AGE
                for s in f.samples
            }
    assert ages[dlq] >= floor
    assert ages[settings.queues.ingress_dlq] == 0.0
    assert await queue_contents(settings, dlq) == ["ev-0-1-0"]


async def test_one_reader_at_a_time(deployment: tuple[Settings, Broker]) -> None:
    # Two processes reading at once would interleave what they give back: while
    # another connection holds the reader's queue, a refresh reads no dead letters.
    settings, broker = deployment
    q = settings.queues
    dlq = q.dead_letter("age_probe")
    await put(broker, settings, 0, timedelta(hours=1))
    registry = CollectorRegistry()
    stats = QueueStats(settings, APP, registry=registry, wall=lambda: NOW)
    holder = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with holder:
        channel = await holder.channel()
        await channel.declare_queue(
            q.dead_letter_reader, exclusive=True, auto_delete=True,
            arguments={"x-queue-type": "classic"},
        )  # fmt: skip
        await stats.refresh(broker)
        assert sample(registry, dlq) is None
        # Depths are read all the same.
        assert registry.get_sample_value("bucketfn_queue_messages", {"queue": dlq}) == 1
    # The holder's connection closed, and its queue with it: this process reads now,
    # and gives the queue back when done (the next refresh takes it again).
    await stats.refresh(broker)
    assert sample(registry, dlq) == 3600.0
    assert await queue_contents(settings, dlq) == ["ev-0-1-0"]
    checker = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with checker:
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await checker.channel()).declare_queue(q.dead_letter_reader, passive=True)
