"""The API's connection to RabbitMQ: made in the background, rebuilt when lost.

The API listens before RabbitMQ answers and goes on listening while it is
away: routes that need the broker answer 503 with ``Retry-After`` meanwhile,
and ``/readyz`` says why. The broker's adapter does not reconnect by itself
(see ``runtime.adapters.amqp.Broker.connect``), so this loop does, as the
runtime's own process does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from runtime.adapters.amqp import Broker
from runtime.core.errors import BrokerError
from runtime.core.retry import delays

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.api")


class Link:
    """The current :class:`Broker`, if connected; a :class:`~runtime.core.seams.Publisher`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._broker: Broker | None = None

    @property
    def connected(self) -> bool:
        """Whether a connection is up now."""
        return self._broker is not None and not self._broker.lost.is_set()

    def broker(self) -> Broker:
        """The connected broker; :class:`BrokerError` while there is none."""
        broker = self._broker
        if broker is None or broker.lost.is_set():
            raise BrokerError("not connected to RabbitMQ (reconnecting)")
        return broker

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish with a confirm on the current connection."""
        await self.broker().publish(
            queue, body, headers=headers, message_id=message_id, expiration_ms=expiration_ms
        )

    async def run(self) -> None:
        """Keep a connection up, forever (cancel to stop)."""
        backoff = delays()
        while True:
            try:
                async with Broker.connect(self._settings) as broker:
                    self._broker = broker
                    backoff = delays()
                    log.info("connected to RabbitMQ")
                    await broker.lost.wait()
            except BrokerError as exc:
                log.warning("cannot reach RabbitMQ", error=str(exc))
            finally:
                self._broker = None
            delay = next(backoff)
            log.warning("connection to RabbitMQ lost; reconnecting", retry_in_s=delay)
            await asyncio.sleep(delay)
