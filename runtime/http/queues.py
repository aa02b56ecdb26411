"""Depth and consumers of every queue of the deployment, for ``/metrics``.

A scrape must never wait on the broker, so the figures are refreshed in the
background (:meth:`QueueStats.watch`) and a scrape reads the last ones. They
come from passive declares — what any AMQP client may ask, no management
plugin or its credentials — on a connection of their own, so a slow or lost
broker never touches the consumers' connection. A queue whose figures could
not be read this round has no sample: a stale depth would look like a fact.

Every process of a deployment reports the same queues: aggregate with ``max by
(queue)``, not ``sum``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.errors import BrokerError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from runtime.app.router import App
    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.metrics")


class QueueStats(Collector):
    """A collector of ``bucketfn_queue_messages`` and ``bucketfn_queue_consumers`` by queue."""

    def __init__(
        self,
        settings: Settings,
        app: App,
        *,
        registry: CollectorRegistry | None = None,
        every: float = 15.0,
    ) -> None:
        """Collect for ``app``'s queues; registered on ``registry`` if one is given."""
        self._settings = settings
        self._names = tuple(queue_arguments(settings, app))
        self._every = every
        self._figures: dict[str, tuple[int, int]] = {}  # queue → (ready messages, consumers)
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (so registering never reads the broker)."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The last figures read."""
        messages, consumers = self._families()
        for queue, (ready, consuming) in sorted(self._figures.items()):
            messages.add_metric([queue], ready)
            consumers.add_metric([queue], consuming)
        return [messages, consumers]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "bucketfn_queue_messages",
                "Messages ready in the queue (not counting those delivered and unacked).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "bucketfn_queue_consumers", "Consumers of the queue.", labels=["queue"]
            ),
        ]

    async def watch(self) -> None:
        """Refresh every ``every`` seconds, forever; reconnect when the broker is lost."""
        while True:
            try:
                async with Broker.connect(self._settings) as broker:
                    while not broker.lost.is_set():
                        await self.refresh(broker)
                        await asyncio.sleep(self._every)
            except BrokerError as exc:
                log.warning("queue figures unavailable", error=str(exc))
            self._figures = {}
            await asyncio.sleep(self._every)

    async def refresh(self, broker: Broker) -> None:
        """Read every queue's figures once."""
        figures: dict[str, tuple[int, int]] = {}
        for name in self._names:
            # A passive declare of a missing queue closes its channel: one each.
            async with broker.channel() as channel:
                try:
                    queue = await broker.existing(channel, name)
                except BrokerError:
                    if broker.lost.is_set():
                        raise
                    continue
            declared = queue.declaration_result
            figures[name] = (declared.message_count or 0, declared.consumer_count or 0)
        self._figures = figures
