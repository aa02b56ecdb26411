"""Listening to the feed (``bucketfn watch``) without touching anything the runtime needs.

The one thing a listener creates is its own queue: server-named, exclusive
(the broker deletes it with the connection, even after ``kill -9``),
auto-delete, transient and classic, capped at ``backlog`` messages dropping
the oldest — a watcher that cannot keep up loses old notes instead of growing
the broker. It is bound to the transient feed exchange
(:func:`runtime.engine.feed.declare_exchange`); no durable queue or exchange is
declared, read or bound, so every consumer of the deployment's queues sees
exactly what it would without a watcher.

Deliveries are acknowledged as the caller takes them, with a small prefetch:
the backlog then waits in the capped queue rather than in this process's
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from runtime.adapters.amqp import Broker, mapped
from runtime.core.errors import BrokerError
from runtime.core.retry import delays
from runtime.engine.feed import Batch, declare_exchange, decode

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.core.settings import Settings

BACKLOG = 10_000  # batches kept for a watcher that falls behind (then the oldest go)
PREFETCH = 32
LEAVE_WITHIN = 2.0  # seconds


class Listener:
    """One subscription to the feed; :meth:`next` waits for the next batch."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.undecodable = 0  # messages on the exchange that were not feed batches
        self._inbox: asyncio.Queue[tuple[AbstractIncomingMessage, Batch | None]] = asyncio.Queue()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait((message, decode(message.body)))

    async def next(self) -> Batch:
        """The next batch published by any runtime of the deployment."""
        while True:
            message, batch = await self._inbox.get()
            async with mapped("acknowledging a feed message"):
                await message.ack()
            if batch is not None:
                return batch
            self.undecodable += 1


@contextlib.asynccontextmanager
async def listen(
    broker: Broker, settings: Settings, *, backlog: int = BACKLOG
) -> AsyncIterator[Listener]:
    """Subscribe to the deployment's feed while the block runs; the queue is gone after it."""
    arguments: dict[str, Any] = {
        "x-queue-type": "classic",  # exclusive queues are classic; say so on any vhost default
        "x-max-length": backlog,
        "x-overflow": "drop-head",
    }
    async with broker.channel() as channel:
        # This channel closing under us (a channel error) ends the session as a lost
        # connection does, so :func:`follow` subscribes again instead of going quiet.
        channel.close_callbacks.add(lambda *_: broker.lost.set())
        async with mapped("subscribing to the feed"):
            await channel.set_qos(prefetch_count=PREFETCH)
            exchange = await declare_exchange(channel, settings.queues.feed)
            queue = await channel.declare_queue(
                "", durable=False, exclusive=True, auto_delete=True, arguments=arguments
            )
            await queue.bind(exchange)
            listener = Listener(queue.name)
            tag = await queue.consume(listener._on_message)
        try:
            yield listener
        finally:
            # Exclusive and auto-delete would remove it too; deleting it here makes
            # "gone when watch ends" exact rather than eventual. Bounded: a broker that
            # stopped answering must not keep Ctrl-C waiting (exclusive covers that case).
            with contextlib.suppress(BrokerError, TimeoutError):
                async with asyncio.timeout(LEAVE_WITHIN), mapped("leaving the feed"):
                    await queue.cancel(tag)
                    await queue.delete(if_unused=False, if_empty=False)


async def follow(
    settings: Settings,
    on_batch: Callable[[Batch], object],
    *,
    on_link: Callable[[str], None] = lambda queue: None,
    on_lost: Callable[[str], None] = lambda error: None,
    backlog: int = BACKLOG,
) -> None:
    """Hand every batch to ``on_batch`` until cancelled, reconnecting when the broker is lost.

    ``on_link`` gets the listener's queue name each time it subscribes;
    ``on_lost`` the reason each time it cannot. What ``on_batch`` raises ends
    the call (a closed pipe ends ``watch``).
    """
    backoff = delays(cap=5.0)
    while True:
        try:
            async with (
                Broker.connect(settings) as broker,
                listen(broker, settings, backlog=backlog) as listener,
            ):
                backoff = delays(cap=5.0)
                on_link(listener.queue)
                await _relay(broker, listener, on_batch)
        except BrokerError as exc:
            on_lost(str(exc))
        await asyncio.sleep(next(backoff))


async def _relay(broker: Broker, listener: Listener, on_batch: Callable[[Batch], object]) -> None:
    """Relay batches until the connection is lost (BrokerError) or ``on_batch`` raises."""

    async def relay() -> None:
        while True:
            on_batch(await listener.next())

    relaying = asyncio.ensure_future(relay())
    lost = asyncio.ensure_future(broker.lost.wait())
    try:
        await asyncio.wait({relaying, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relaying, lost):
            task.cancel()
    if relaying.done() and not relaying.cancelled():
        relaying.result()  # re-raise what relaying raised
    raise BrokerError("connection to RabbitMQ lost")
