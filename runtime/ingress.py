"""The router: ingress queue → one message per matching function.

Kept apart from the function queues so one slow or failing function never
blocks another, one event fans out to several functions, and each function
has its own concurrency, retries and dead-letter queue.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from runtime import events
from runtime.errors import BrokerError, EventError
from runtime.records import IngressDeadLetter, Invocation, digest, dumps

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.names import Queues
    from runtime.routing import App
    from runtime.worker import Publisher

log = structlog.get_logger("bucketfn.router")


class Dispatcher:
    """Parses ingress messages and publishes invocations, confirmed, before acking."""

    def __init__(self, app: App, publisher: Publisher, queues: Queues) -> None:
        self.app = app
        self.publisher = publisher
        self.queues = queues

    async def route(self, body: bytes) -> list[Invocation]:
        """Publish one invocation per (event, matching function); return them.

        Raises EventError for a message that is not a bucket event.
        """
        invocations = [
            Invocation(function=route.name, event=ev)
            for ev in events.parse(body)
            for route in self.app.match(ev)
        ]
        await asyncio.gather(
            *(
                self.publisher.publish(
                    self.queues.function(inv.function),
                    dumps(inv),
                    message_id=inv.event.event_id,
                    headers={"x-bucketfn-event-id": inv.event.event_id},
                )
                for inv in invocations
            )
        )
        return invocations

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Route one ingress message; bad ones go to the ingress dead-letter queue."""
        try:
            invocations = await self.route(message.body)
        except EventError as exc:
            ident = digest(message.body)
            letter = IngressDeadLetter.of(ident, exc.reason, message.body)
            await self.publisher.publish(
                self.queues.ingress_dlq,
                dumps(letter),
                message_id=ident,
                headers={"x-bucketfn-kind": "ingress-dead-letter"},
            )
            log.warning("bad event dead-lettered", reason=exc.reason, dead_letter_id=ident)
            await message.ack()
            return
        except BrokerError as exc:
            # Some copies may have been published: redelivery republishes them,
            # and the worker's idempotency check makes the duplicate harmless.
            log.warning("routing publish failed, requeueing", error=str(exc))
            await message.nack(requeue=True)
            return
        for inv in invocations:
            log.debug(
                "routed",
                function=inv.function,
                event_id=inv.event.event_id,
                bucket=inv.event.bucket,
                key=inv.event.key,
            )
        if not invocations:
            log.debug("no route", body_bytes=len(message.body))
        await message.ack()
