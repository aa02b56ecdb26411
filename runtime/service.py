"""The runtime process: router and workers on one connection, graceful stop.

On stop (SIGTERM/SIGINT) consumers are cancelled first so nothing new starts,
in-flight invocations get ``shutdown_grace`` seconds to finish, and whatever is
still unacked when the channels close is requeued by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aio_pika.exceptions import AMQPError

from runtime.broker import Broker
from runtime.errors import BrokerError
from runtime.ingress import Dispatcher
from runtime.storage import S3Storage
from runtime.worker import Worker

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

    from runtime.routing import App
    from runtime.settings import Settings

log = structlog.get_logger("bucketfn.service")

MessageHandler = Callable[["AbstractIncomingMessage"], Awaitable[Any]]


class _Consumer:
    """A queue consumer that tracks its in-flight tasks so a stop can drain them."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, handler: MessageHandler):
        self.channel = channel
        self.queue = queue
        self.handler = handler
        self.tasks: set[asyncio.Task[Any]] = set()
        self.tag: str | None = None

    async def start(self) -> None:
        self.tag = await self.queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self.handler(message)
        except Exception:  # the handler's own failures are classified; this is a bug or outage
            log.exception("message handling failed, requeueing", queue=self.queue.name)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def stop(self) -> None:
        if self.tag is not None:
            with contextlib.suppress(Exception):
                await self.queue.cancel(self.tag)
            self.tag = None

    async def drain(self, grace: float) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()


async def serve(
    app: App,
    settings: Settings,
    stop: asyncio.Event,
    *,
    functions: set[str] | None = None,
    router: bool = True,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the router and the workers until ``stop`` is set, then drain.

    If the broker goes away, everything is rebuilt on a new connection once it
    is back; unacked messages are redelivered by then (results are idempotent).
    """
    async with S3Storage.connect(settings) as storage:
        delay = 0.5
        while not stop.is_set():
            try:
                async with Broker.connect(settings) as broker:
                    delay = 0.5
                    if await _session(
                        app, settings, storage, broker, stop, functions, router, ready
                    ):
                        return
            except (BrokerError, AMQPError, OSError) as exc:
                log.warning("cannot reach RabbitMQ", error=str(exc))
            log.warning("connection to RabbitMQ lost; reconnecting", retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)


async def _session(
    app: App,
    settings: Settings,
    storage: S3Storage,
    broker: Broker,
    stop: asyncio.Event,
    functions: set[str] | None,
    router: bool,
    ready: asyncio.Event | None,
) -> bool:
    """One connection's life: consume until stop (True) or until the broker is lost (False)."""
    await broker.declare(settings, app)
    consumers: list[_Consumer] = []
    if router:
        dispatcher = Dispatcher(app, broker, settings.queues)
        ch, q = await broker.consumer(settings.queues.ingress, settings.router_prefetch)
        consumers.append(_Consumer(ch, q, dispatcher.handle))
    for route in app.routes:
        if functions is not None and route.name not in functions:
            continue
        worker = Worker(
            route,
            storage=storage,
            publisher=broker,
            queues=settings.queues,
            output_bucket=settings.output_bucket,
            chunk_size=settings.read_chunk_size,
        )
        ch, q = await broker.consumer(settings.queues.function(route.name), settings.prefetch)
        consumers.append(_Consumer(ch, q, worker.handle))
    for consumer in consumers:
        await consumer.start()
    log.info("runtime started", functions=[c.queue.name for c in consumers], router=router)
    if ready is not None:
        ready.set()
    stopping = asyncio.ensure_future(stop.wait())
    lost = asyncio.ensure_future(broker.lost.wait())
    await asyncio.wait({stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    lost.cancel()
    if not stop.is_set():
        # Nothing in flight can be acked any more: the broker redelivers it.
        for consumer in consumers:
            for task in list(consumer.tasks):
                task.cancel()
        return False
    log.info("stopping: no new messages, draining in-flight work")
    for consumer in consumers:
        await consumer.stop()
    await asyncio.gather(*(c.drain(settings.shutdown_grace) for c in consumers))
    for consumer in consumers:
        with contextlib.suppress(Exception):
            await consumer.channel.close()
    log.info("runtime stopped")
    return True
