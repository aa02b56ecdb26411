"""The runtime process: dispatcher and workers on one connection, graceful stop.

On stop (SIGTERM/SIGINT) consumers are cancelled first so nothing new starts,
in-flight invocations get ``shutdown_grace`` seconds to finish, and whatever is
still unacked when the channels close is requeued by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog

from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.core.errors import BrokerError
from runtime.core.retry import delays
from runtime.engine.consumer import Consumer
from runtime.engine.dispatcher import Dispatcher
from runtime.engine.health import Health, probe_storage
from runtime.engine.journal import Journal
from runtime.engine.observer import Observer, Observers
from runtime.engine.worker import Worker

if TYPE_CHECKING:
    from runtime.app.router import App
    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.process")


async def serve(
    app: App,
    settings: Settings,
    stop: asyncio.Event,
    *,
    functions: set[str] | None = None,
    dispatcher: bool = True,
    ready: asyncio.Event | None = None,
    observers: tuple[Observer, ...] = (),
    health: Health | None = None,
) -> None:
    """Run the dispatcher and the workers until ``stop`` is set, then drain.

    If the broker goes away, everything is rebuilt on a new connection once it
    is back; unacked messages are redelivered by then (results are idempotent).
    ``observers`` watch beside the log (:class:`~runtime.engine.journal.Journal`).
    ``health``, when given, is kept up to date for readiness probes, and S3 is
    probed for it while the process runs.
    """
    observer = Observers((Journal(), *observers))
    state = health or Health()
    async with S3Storage.connect(settings) as storage, _probing(storage, settings, health):
        backoff = delays()
        while not stop.is_set():
            try:
                async with Broker.connect(settings) as broker:
                    backoff = delays()
                    session = _Session(app, settings, storage, broker, observer, state)
                    if await session.run(stop, functions, dispatcher=dispatcher, ready=ready):
                        return
            except BrokerError as exc:
                log.warning("cannot reach RabbitMQ", error=str(exc))
            finally:
                state.idle(connected=False)
            delay = next(backoff)
            log.warning("connection to RabbitMQ lost; reconnecting", retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


@contextlib.asynccontextmanager
async def _probing(
    storage: S3Storage, settings: Settings, health: Health | None
) -> AsyncIterator[None]:
    """Probe S3 for ``health`` while the block runs (not at all without one to tell)."""
    if health is None:
        yield
        return
    probe = asyncio.create_task(probe_storage(storage, settings.output_bucket, health))
    try:
        yield
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe


class _Session:
    """One connection's life: its consumers, until stop or until the broker is lost."""

    def __init__(
        self,
        app: App,
        settings: Settings,
        storage: S3Storage,
        broker: Broker,
        observer: Observer,
        health: Health,
    ) -> None:
        self.app = app
        self.settings = settings
        self.storage = storage
        self.broker = broker
        self.observer = observer
        self.health = health

    async def _consumers(self, functions: set[str] | None, *, dispatcher: bool) -> list[Consumer]:
        settings, broker = self.settings, self.broker
        consumers: list[Consumer] = []
        if dispatcher:
            d = Dispatcher(
                self.app, broker, settings.queues, self.observer, routing_key=settings.routing_key
            )
            ch, q = await broker.consumer(settings.queues.ingress, settings.router_prefetch)
            consumers.append(Consumer(ch, q, d.handle))
            # What the events exchange could not route (its alternate exchange's queue).
            ch, q = await broker.consumer(settings.queues.unrouted, settings.router_prefetch)
            consumers.append(Consumer(ch, q, d.drain))
        for route in self.app.routes:
            if functions is not None and route.name not in functions:
                continue
            worker = Worker(
                route,
                storage=self.storage,
                publisher=broker,
                queues=settings.queues,
                output_bucket=settings.output_bucket,
                chunk_size=settings.read_chunk_size,
                observer=self.observer,
            )
            ch, q = await broker.consumer(settings.queues.function(route.name), settings.prefetch)
            consumers.append(Consumer(ch, q, worker.handle))
        return consumers

    async def run(
        self,
        stop: asyncio.Event,
        functions: set[str] | None,
        *,
        dispatcher: bool,
        ready: asyncio.Event | None,
    ) -> bool:
        """Consume until stop (True) or until the broker is lost (False)."""
        self.health.idle(connected=True)
        await self.broker.declare(self.settings, self.app)
        consumers = await self._consumers(functions, dispatcher=dispatcher)
        for consumer in consumers:
            await consumer.start()
        self.health.consuming(tuple(c.queue.name for c in consumers))
        log.info(
            "runtime started",
            queues=[c.queue.name for c in consumers],
            dispatcher=dispatcher,
        )
        if ready is not None:
            ready.set()
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.broker.lost.wait())
        await asyncio.wait({stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        lost.cancel()
        self.health.idle(connected=not self.broker.lost.is_set())
        if not stop.is_set():
            for consumer in consumers:
                await consumer.abandon()
            return False
        log.info("stopping: no new messages, draining in-flight work")
        for consumer in consumers:
            await consumer.stop()
        await asyncio.gather(*(c.drain(self.settings.shutdown_grace) for c in consumers))
        for consumer in consumers:
            await consumer.close()
        log.info("runtime stopped")
        return True
