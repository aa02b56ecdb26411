"""The test harness is a deployment of its own: a ``make up`` runtime never meets it.

``make up`` runs the default deployment (``bucketfn``) on servers the tests may
share. Its ingress is simulated here by a queue bound as the default
deployment's ingress is (the events exchange, ``bucketfn.ingress``) that keeps
what reaches it, so what a ``make up`` runtime would have consumed is counted,
not waited for. Both directions are checked against positive signals: the
harness has processed its own uploads, and a default-deployment event has reached
the default queue, before anything is counted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import aio_pika
import orjson
import pytest

from runtime.core.names import Deployment
from tests.e2e.conftest import Stack
from tests.servers import TEST_DEPLOYMENT, unique
from tests.unit.test_events import minio

pytestmark = pytest.mark.e2e
DEFAULT = Deployment()  # what `make up` runs as
# Only the harness's e2e routes cover this prefix: `make up`'s own rules (functions:app,
# on uploads/, raw, staging) still send it the uploads they cover, whoever uploads
# them; routing is per deployment, rules per bucket.
PREFIX = "e2e-count/"
FN = "invocation_log"


@pytest.fixture
async def default_ingress(stack: Stack) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue bound like the default deployment's ingress, removed afterwards."""
    conn = await aio_pika.connect(stack.settings.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(f"bft-default-{uuid.uuid4().hex[:8]}", exclusive=True)
        await queue.bind(stack.settings.exchange, routing_key=DEFAULT.routing_key)
        yield queue


async def _keys(queue: aio_pika.abc.AbstractQueue) -> list[str]:
    """The object keys of every event the queue holds (drained), decoded as MinIO encodes them."""
    keys: list[str] = []
    while (got := await queue.get(fail=False)) is not None:
        keys.append(unquote_plus(orjson.loads(got.body)["Records"][0]["s3"]["object"]["key"]))
        await got.ack()
    return keys


async def _uploaded(stack: Stack, key: str) -> None:
    """Upload ``key`` and wait until the harness has run ``invocation_log`` on it."""
    await asyncio.to_thread(stack.s3.put_object, Bucket="job-inputs", Key=key, Body=b"x")
    await stack.seen.until(lambda: (FN, key, "ok") in stack.seen.outcomes, 60)


async def test_the_harness_and_a_make_up_runtime_never_share_events(
    stack: Stack, default_ingress: aio_pika.abc.AbstractQueue
) -> None:
    s = stack.settings
    # The harness's names are its deployment's, not make up's: own target, own key.
    assert s.deployment == TEST_DEPLOYMENT != DEFAULT.name
    assert s.routing_key == Deployment(TEST_DEPLOYMENT).routing_key != DEFAULT.routing_key
    assert s.minio_target_arn == Deployment(TEST_DEPLOYMENT).target_arn() != DEFAULT.target_arn()

    # 1. An upload only the harness's routes cover is processed by the harness:
    # MinIO published it (once, to the harness's target), so a queue bound to
    # that publish's key held it before the harness could even consume it.
    ours = f"{PREFIX}{unique('iso')}/ours.bin"
    await _uploaded(stack, ours)

    # 2. An event of the default deployment, published as MinIO's `bucketfn` target
    # does, for a key the harness's routes cover: it reaches the default queue...
    theirs = f"{PREFIX}{unique('iso')}/theirs.bin"
    conn = await aio_pika.connect(s.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(s.exchange, ensure=False)
        message = aio_pika.Message(minio(theirs), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key=DEFAULT.routing_key, mandatory=True)

    # ...and not the harness: that one publish was routed to every bound queue at
    # once, so once the harness has processed a later upload of its own, it would
    # have dispatched the default event had its ingress been bound to that key.
    later = f"{PREFIX}{unique('iso')}/later.bin"
    await _uploaded(stack, later)
    held = await _keys(default_ingress)
    assert theirs in held  # the default binding is live: absence below means something
    assert ours not in held and later not in held, "a harness upload reached make up's ingress"
    seen = {key for key, _ in [*stack.seen.routed, *stack.seen.unrouted]}
    assert {ours, later} <= seen
    assert theirs not in seen, "the harness consumed an event of the default deployment"
