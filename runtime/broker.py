"""RabbitMQ through aio-pika: topology, confirmed publishing, consuming.

Every queue is a durable quorum queue. Every publish waits for the broker's
confirm and is ``mandatory``, so a message routed nowhere comes back as an
error instead of vanishing; a consumed message is acked only after whatever
replaces it (a function message, a retry, a dead letter) is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractQueue,
    ExchangeType,
)
from aio_pika.exceptions import AMQPError, DeliveryError
from aiormq.exceptions import ChannelPreconditionFailed

from runtime.errors import BrokerError, ConfigError
from runtime.retry import tiers_for

if TYPE_CHECKING:
    from runtime.names import Queues
    from runtime.routing import App, Route
    from runtime.settings import Settings

_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
# RabbitMQ 4 gives every quorum queue a default delivery limit of 20 and drops
# a message past it when the queue has no dead-letter exchange. Listing a
# dead-letter queue returns each message to it, which can count as a delivery,
# so dead-letter queues get a limit that no amount of listing reaches.
_KEEP: dict[str, Any] = {**_QUORUM, "x-delivery-limit": 1_000_000_000}


def _dead_letter_to(queue: str) -> dict[str, Any]:
    # at-least-once dead-lettering keeps a message in its source queue until the
    # target confirms it; it requires reject-publish overflow.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def queue_arguments(settings: Settings, app: App) -> dict[str, dict[str, Any]]:
    """Every queue bucketfn needs, with its arguments; the topology as data."""
    q = settings.queues
    # A message redelivered delivery_limit times (its consumer crashed or was
    # killed on it each time) is dead-lettered by the broker itself. RabbitMQ 4
    # applies a default limit of 20 and *drops* the message when no dead-letter
    # exchange is set; here every queue with a limit has one.
    limit = settings.delivery_limit
    queues: dict[str, dict[str, Any]] = {
        q.ingress: {
            **_QUORUM,
            "x-delivery-limit": limit,
            **_dead_letter_to(q.ingress_dlq),
        },
        q.ingress_dlq: dict(_KEEP),
    }
    for route in app.routes:
        queues.update(function_queues(q, route, limit))
    return queues


def function_queues(q: Queues, route: Route, limit: int) -> dict[str, dict[str, Any]]:
    """The work queue, dead-letter queue and delay tiers of one function."""
    work = q.function(route.name)
    out: dict[str, dict[str, Any]] = {
        work: {
            **_QUORUM,
            "x-delivery-limit": limit,
            **_dead_letter_to(q.dead_letter(route.name)),
        },
        q.dead_letter(route.name): dict(_KEEP),
    }
    for tier in tiers_for(route.retry):
        out[q.retry(route.name, tier)] = {
            **_QUORUM,
            # Static per queue: RabbitMQ expires messages in order, at the head.
            "x-message-ttl": tier,
            **_dead_letter_to(work),
        }
    return out


class _ClosingConnection(aio_pika.Connection):
    """A connection that closes itself when connecting fails.

    Otherwise the half-made connection closes from ``__del__`` whenever the
    garbage collector finds it, which may be outside the event loop, leaving
    a never-awaited coroutine behind on every failed attempt.
    """

    async def connect(self, timeout: aio_pika.abc.TimeoutType = None) -> None:  # noqa: ASYNC109 - overrides aio-pika's signature
        try:
            await super().connect(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise


class Broker:
    """One connection; a confirming publisher channel; consumer channels on demand."""

    def __init__(self, connection: AbstractConnection, publisher: AbstractChannel) -> None:
        self.connection = connection
        self._pub = publisher
        # Set when the connection or any of its channels closes under us; the
        # runtime then rebuilds everything on a fresh connection (see service).
        self.lost = asyncio.Event()
        connection.close_callbacks.add(self._on_close)
        publisher.close_callbacks.add(self._on_close)

    def _on_close(self, *_: object) -> None:
        self.lost.set()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[Broker]:
        """Connect, waiting up to ``connect_timeout`` for the broker, and open the publisher.

        A plain connection, not aio-pika's robust one: its silent restore of
        channels and consumers after a broker restart raced the restart of
        quorum queues and sometimes left a runtime connected but consuming
        nothing. The runtime reconnects by rebuilding instead (service.serve).
        """
        deadline = time.monotonic() + settings.connect_timeout
        delay = 0.5
        while True:
            try:
                connection = await aio_pika.connect(
                    settings.amqp_url.get_secret_value(),
                    client_properties={"connection_name": "bucketfn"},
                    connection_class=_ClosingConnection,
                )
                break
            except (AMQPError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise BrokerError(f"cannot connect to RabbitMQ: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            yield cls(connection, publisher)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def declare(self, settings: Settings, app: App) -> None:
        """Declare the exchange MinIO publishes to, every queue, and the ingress binding.

        Idempotent. The exchange is declared exactly as MinIO declares it before
        each publish (durable, not auto-deleted, not internal, no arguments).
        """
        channel = self._pub
        exchange = await channel.declare_exchange(
            settings.exchange,
            ExchangeType(settings.exchange_type),
            durable=True,
            auto_delete=False,
            internal=False,
        )
        for name, arguments in queue_arguments(settings, app).items():
            try:
                await channel.declare_queue(name, durable=True, arguments=arguments)
            except ChannelPreconditionFailed as exc:
                # RabbitMQ never changes a queue's arguments in place.
                raise ConfigError(
                    f"queue {name!r} exists with other arguments ({exc}); drain and delete "
                    "it, or deploy under a new BUCKETFN_QUEUE_PREFIX"
                ) from exc
        ingress = await channel.get_queue(settings.queues.ingress, ensure=False)
        await ingress.bind(exchange, routing_key=settings.routing_key)

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish to ``queue`` and wait for the broker's confirm."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers or {}),
            message_id=message_id,
            expiration=timedelta(milliseconds=expiration_ms) if expiration_ms else None,
        )
        try:
            await self._pub.default_exchange.publish(message, routing_key=queue, mandatory=True)
        except DeliveryError as exc:
            raise BrokerError(f"publish to {queue!r} not confirmed: {exc}") from exc
        except (AMQPError, OSError) as exc:
            raise BrokerError(f"publish to {queue!r} failed: {exc}") from exc

    async def consumer(self, queue: str, prefetch: int) -> tuple[AbstractChannel, AbstractQueue]:
        """A channel with its own prefetch and the queue to consume on it."""
        channel = await self.connection.channel()
        channel.close_callbacks.add(self._on_close)
        await channel.set_qos(prefetch_count=prefetch)
        return channel, await channel.declare_queue(queue, passive=True)
