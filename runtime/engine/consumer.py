"""A queue consumer that tracks its in-flight tasks, so a stop can drain them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from runtime.adapters.amqp import mapped

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

log = structlog.get_logger("bucketfn.consumer")

MessageHandler = Callable[["AbstractIncomingMessage"], Awaitable[Any]]


class Consumer:
    """Consumes one queue on its own channel; each message runs as a task of its own."""

    def __init__(
        self, channel: AbstractChannel, queue: AbstractQueue, handler: MessageHandler
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.handler = handler
        self.tasks: set[asyncio.Task[Any]] = set()
        self.tag: str | None = None

    async def start(self) -> None:
        """Begin consuming."""
        async with mapped(f"consuming {self.queue.name!r}"):
            self.tag = await self.queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self.handler(message)
        except Exception:
            # Never requeue at once: that is a hot loop, and on RabbitMQ 4 a nack never
            # reaches the delivery limit. Rejecting dead-letters the message through the
            # queue's own dead-letter exchange (at-least-once), where `dlq ls` shows it.
            # If the broker is gone, this fails too and the message is redelivered after
            # the reconnect's backoff.
            log.exception("message handling failed, dead-lettering it", queue=self.queue.name)
            with contextlib.suppress(Exception):
                await message.reject(requeue=False)
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def stop(self) -> None:
        """Stop taking new messages (in-flight ones go on)."""
        if self.tag is not None:
            with contextlib.suppress(Exception):
                await self.queue.cancel(self.tag)
            self.tag = None

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for in-flight messages, then cancel the rest."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            await _cancelled(pending)

    async def abandon(self) -> None:
        """The connection is gone: nothing in flight can be acked; the broker redelivers it."""
        await _cancelled(set(self.tasks))

    async def close(self) -> None:
        """Close the channel; whatever is still unacked goes back to the queue."""
        with contextlib.suppress(Exception):
            await self.channel.close()


async def _cancelled(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have ended.

    A cancelled handler still runs its cleanup (aborting a multipart upload,
    closing spools); awaiting it makes that happen before the channel closes
    and before a redelivered copy of the same message starts elsewhere.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
