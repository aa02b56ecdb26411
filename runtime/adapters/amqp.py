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
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractQueue,
    ExchangeType,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)
from aiormq import spec

from runtime.adapters.topology import Exchange, bindings, exchanges, queue_arguments
from runtime.core.errors import BrokerError, ConfigError
from runtime.core.retry import delays

if TYPE_CHECKING:
    from runtime.app.router import App
    from runtime.core.settings import Settings

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    AMQPError,
    OSError,
    ConnectionError,
    ChannelInvalidStateError,  # a RuntimeError, not an AMQPError: a call on a closed channel
)
"""What aio-pika and aiormq raise when the broker or the network fails."""

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


def translate(exc: BaseException, what: str) -> BrokerError:
    """Map an aio-pika/aiormq error to bucketfn's tree: the one AMQP mapping point.

    Like ``runtime.adapters.s3.translate`` for S3: nothing above the adapter
    catches an AMQP library's exception type.
    """
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, DeliveryError):
        return BrokerError(f"{what}: not confirmed: {exc}")
    if isinstance(exc, ChannelNotFoundEntity):
        return BrokerError(f"{what}: does not exist: run `bucketfn init` first")
    return BrokerError(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def mapped(what: str) -> AsyncIterator[None]:
    """Run a block of AMQP calls; their errors leave it as :class:`BrokerError`."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise translate(exc, what) from exc


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

    def __init__(
        self,
        connection: AbstractConnection,
        publisher: AbstractChannel,
        *,
        publish_timeout: float = 30.0,
    ) -> None:
        self.connection = connection
        self._pub = publisher
        self.publish_timeout = publish_timeout
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
        for delay in delays(cap=5.0):
            try:
                connection = await aio_pika.connect(
                    settings.amqp_url.get_secret_value(),
                    client_properties={"connection_name": "bucketfn"},
                    connection_class=_ClosingConnection,
                )
                break
            except CONNECTION_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise translate(exc, "cannot connect to RabbitMQ") from exc
                await asyncio.sleep(delay)
        try:
            async with mapped("opening the publisher channel"):
                publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            yield cls(connection, publisher, publish_timeout=settings.publish_timeout)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def declare(self, settings: Settings, app: App) -> None:
        """Declare the exchange MinIO publishes to, every queue, and the ingress binding.

        Idempotent. The exchange is declared exactly as MinIO declares it before
        each publish (durable, not auto-deleted, not internal, no arguments).
        """
        async with mapped("declaring the topology"):
            await self._declare(settings, app)

    async def _declare(self, settings: Settings, app: App) -> None:
        channel = self._pub
        for exchange in exchanges(settings):
            await self._ensure_exchange(exchange)
        for name, arguments in queue_arguments(settings, app).items():
            try:
                await channel.declare_queue(name, durable=True, arguments=arguments)
            except ChannelPreconditionFailed as exc:
                # RabbitMQ never changes a queue's arguments in place.
                raise ConfigError(
                    f"queue {name!r} exists with other arguments ({exc}); drain and delete "
                    "it, or deploy under a new BUCKETFN_QUEUE_PREFIX"
                ) from exc
        for binding in bindings(settings):
            queue = await channel.get_queue(binding.queue, ensure=False)
            await queue.bind(binding.exchange, routing_key=binding.routing_key)

    async def _ensure_exchange(self, exchange: Exchange) -> None:
        # A passive declare first: it needs no permission, so the runtime's own
        # identity (which may not configure MinIO's exchange) finds what init made.
        # It runs on a channel of its own: NOT_FOUND closes the channel it is sent on.
        try:
            async with self.channel() as probe:
                await probe.declare_exchange(exchange.name, passive=True)
        except ChannelNotFoundEntity:
            await self._pub.declare_exchange(
                exchange.name,
                ExchangeType(exchange.type),
                durable=True,
                auto_delete=False,
                internal=False,
            )

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish to ``queue`` and wait for the broker's confirm.

        Every message gets a message id (a fresh one unless given): aiormq
        matches a message returned as unroutable to its publish by that id, so
        two publishes in flight on one channel must never share it.
        """
        # Straight to aiormq, not through aio_pika.Message: building one costs more
        # CPU than the rest of a routed event (tens of validated attribute sets);
        # these properties are what it would have produced.
        properties = spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            headers={str(k): v for k, v in (headers or {}).items()},
            message_id=message_id or uuid.uuid4().hex,
            expiration=str(expiration_ms) if expiration_ms else None,
        )
        try:
            # A broker in a memory or disk alarm blocks publishers without a word;
            # a handler must not hang on it for ever, so a confirm has a deadline.
            async with asyncio.timeout(self.publish_timeout), mapped(f"publish to {queue!r}"):
                channel = await self._pub.get_underlay_channel()
                # Awaits the broker's confirm; a nack or a return (mandatory: what
                # routes nowhere comes back, never vanishes) raises a DeliveryError.
                await channel.basic_publish(
                    body, routing_key=queue, properties=properties, mandatory=True
                )
        except TimeoutError:
            raise BrokerError(
                f"publish to {queue!r} not confirmed within {self.publish_timeout:g} s "
                "(is the broker blocking publishers: a memory or disk alarm?)"
            ) from None

    async def consumer(self, queue: str, prefetch: int) -> tuple[AbstractChannel, AbstractQueue]:
        """A channel with its own prefetch and the queue to consume on it."""
        async with mapped(f"consuming {queue!r}"):
            channel = await self.connection.channel()
            channel.close_callbacks.add(self._on_close)
            await channel.set_qos(prefetch_count=prefetch)
            return channel, await channel.declare_queue(queue, passive=True)

    async def existing(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        """``queue`` on ``channel`` if it exists (a passive declare), else BrokerError."""
        async with mapped(f"queue {queue!r}"):
            return await channel.declare_queue(queue, passive=True)

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[AbstractChannel]:
        """A short-lived channel (e.g. to read a queue without consuming it); closed on exit.

        Closing a channel returns every message taken on it and not acked.
        """
        async with mapped("opening a channel"):
            channel = await self.connection.channel()
        try:
            yield channel
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await channel.close()
