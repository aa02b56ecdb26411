"""Depth and consumers of every queue of the deployment, for ``/metrics``.

A scrape must never wait on the broker, so the figures are refreshed in the
background (:meth:`QueueStats.watch`) and a scrape reads the last ones. They
come from passive declares — what any AMQP client may ask, no management
plugin or its credentials — on a connection of their own, so a slow or lost
broker never touches the consumers' connection. A queue whose figures could
not be read this round has no sample: a stale depth would look like a fact.

Every process of a deployment reports the same queues: aggregate with ``max by
(queue)``, not ``sum``.

The age of each dead-letter queue's oldest entry is read the way ``bucketfn
status`` reads it (:mod:`runtime.ops.status`, whose docstring says why): every
entry taken and all given back at once, in order, so nothing is consumed or
reordered. That costs a round trip per entry, so a queue is read again only
when its depth changed or ``reread`` seconds passed, and one longer than
``read`` entries is not read at all (no sample, as for an unknown depth); the
age itself is computed at each scrape from the oldest entry's time. An empty
dead-letter queue's oldest age is 0, so an alert on it needs no ``absent()``.
Every process of a deployment runs this collector, and two readers taking
entries at once would each give back a subset, interleaving them: a process
reads only while it holds an exclusive queue (``Queues.dead_letter_reader``;
RabbitMQ refuses it to a second connection, and deletes it with its holder's
connection), and one that finds it held keeps its last figures for the round.
(A ``bucketfn status`` or ``dlq ls`` reading at the same moment is the caveat
:mod:`runtime.ops.status` describes.)
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime.adapters.amqp import Broker, mapped
from runtime.adapters.topology import queue_arguments
from runtime.core.errors import BrokerError
from runtime.ops.status import READ, read_letters

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from aio_pika.abc import AbstractChannel
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from runtime.app.router import App
    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.metrics")
REREAD = 300.0  # seconds: an unchanged dead-letter queue is read whole again this often


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QueueStats(Collector):
    """A collector of ``bucketfn_queue_messages``, ``bucketfn_queue_consumers`` and
    ``bucketfn_deadletter_oldest_age_seconds`` by queue."""

    def __init__(
        self,
        settings: Settings,
        app: App,
        *,
        registry: CollectorRegistry | None = None,
        every: float = 15.0,
        read: int = READ,
        reread: float = REREAD,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Collect for ``app``'s queues; registered on ``registry`` if one is given."""
        self._settings = settings
        self._names = tuple(queue_arguments(settings, app))
        self._every = every
        self._read, self._reread, self._wall = read, reread, wall
        self._figures: dict[str, tuple[int, int]] = {}  # queue → (ready messages, consumers)
        q = settings.queues
        # Dead-letter queue → the function its entries are for (None: the ingress's).
        self._dead: dict[str, str | None] = {q.ingress_dlq: None}
        self._dead.update({q.dead_letter(r.name): r.name for r in app.routes})
        # Dead-letter queue → (depth when read, its oldest entry's time, monotonic read time).
        self._oldest: dict[str, tuple[int, datetime | None, float]] = {}
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (so registering never reads the broker)."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The last figures read."""
        messages, consumers, oldest = self._families()
        for queue, (ready, consuming) in sorted(self._figures.items()):
            messages.add_metric([queue], ready)
            consumers.add_metric([queue], consuming)
        at = self._wall()
        for queue, (_, then, _) in sorted(self._oldest.items()):
            age = 0.0 if then is None else max((at - then).total_seconds(), 0.0)
            oldest.add_metric([queue], age)
        return [messages, consumers, oldest]

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
            GaugeMetricFamily(
                "bucketfn_deadletter_oldest_age_seconds",
                "Age of the oldest entry of a dead-letter queue, by when it was dead-lettered "
                "(0 when empty; no sample when the queue is too long to read whole).",
                labels=["queue"],
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
            self._figures, self._oldest = {}, {}
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
        clock = time.monotonic()
        if not any(self._stale(name, figures, clock) for name in self._dead if name in figures):
            # Nothing to read (empty, or known and fresh): no reader's queue to take.
            self._oldest = {
                name: found
                for name in self._dead
                if name in figures and (found := self._known(name, figures, clock))
            }
            return
        async with broker.channel() as channel:
            if not await self._lock(broker, channel):
                return  # another process is reading them now: last round's figures stand
            try:
                self._oldest = {
                    name: found
                    for name, function in self._dead.items()
                    if name in figures
                    and (found := await self._age(broker, name, function, figures))
                }
            finally:
                async with mapped("releasing the dead-letter reader's queue"):
                    await channel.queue_delete(self._settings.queues.dead_letter_reader)

    async def _lock(self, broker: Broker, channel: AbstractChannel) -> bool:
        """Hold the exclusive reader's queue; False if another connection holds it."""
        try:
            async with mapped("taking the dead-letter reader's queue"):
                await channel.declare_queue(
                    self._settings.queues.dead_letter_reader,
                    exclusive=True,
                    auto_delete=True,
                    arguments={"x-queue-type": "classic"},  # exclusive queues are classic
                )
        except BrokerError:
            if broker.lost.is_set():
                raise
            return False
        return True

    def _known(
        self, name: str, figures: dict[str, tuple[int, int]], clock: float
    ) -> tuple[int, datetime | None, float] | None:
        """What is known of ``name``'s oldest entry without reading: an empty queue's,
        the last reading while it holds, or None (unknown: too deep to read)."""
        count = figures[name][0]
        if count == 0:
            return (0, None, clock)
        known = self._oldest.get(name)
        if known is not None and known[0] == count and clock - known[2] < self._reread:
            return known
        return None

    def _stale(self, name: str, figures: dict[str, tuple[int, int]], clock: float) -> bool:
        """Whether ``name`` must be read: not empty, its reading old, and shallow enough."""
        count = figures[name][0]
        return self._known(name, figures, clock) is None and count <= self._read

    async def _age(
        self, broker: Broker, name: str, function: str | None, figures: dict[str, tuple[int, int]]
    ) -> tuple[int, datetime | None, float] | None:
        """The oldest entry of ``name`` (read again only if stale), or None when unknown."""
        count, clock = figures[name][0], time.monotonic()
        if not self._stale(name, figures, clock):
            return self._known(name, figures, clock)
        try:
            letters = await read_letters(broker, name, function, count, self._read)
        except BrokerError:
            if broker.lost.is_set():
                raise
            return None
        # Fewer than the depth said (a `dlq` command held some) or no entry says when:
        # unknown, rather than the oldest of a part.
        if letters.count < count or letters.oldest is None:
            return None
        return (count, letters.oldest, clock)
