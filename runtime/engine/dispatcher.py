"""The dispatcher: ingress queue → one message per matching function.

Kept apart from the function queues so one slow or failing function never
blocks another, one event fans out to several functions, and each function
has its own concurrency, retries and dead-letter queue. (The *router* is
where functions are declared; this is what reads the ingress.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import structlog

from runtime.core import events
from runtime.core.errors import BrokerError, EventError
from runtime.core.letters import IngressDeadLetter, raw_headers
from runtime.core.names import Header
from runtime.core.records import Invocation, digest, dumps
from runtime.engine.observer import Observer, Observers

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.app.router import App
    from runtime.core.names import Queues
    from runtime.core.seams import Publisher

log = structlog.get_logger("bucketfn.dispatcher")


class Dispatcher:
    """Parses ingress messages and publishes invocations, confirmed, before acking."""

    def __init__(
        self,
        app: App,
        publisher: Publisher,
        queues: Queues,
        observer: Observer | None = None,
        *,
        routing_key: str | None = None,
    ) -> None:
        self.app = app
        self.publisher = publisher
        self.queues = queues
        self.observer = observer or Observers()
        # What MinIO publishes this deployment's events with: an unrouted message
        # carrying it is one of ours that arrived while the ingress was unbound.
        self.routing_key = routing_key

    async def route(self, body: bytes) -> list[Invocation]:
        """Publish one invocation per (event, matching function); return them.

        Raises EventError for a message that is not a bucket event.
        """
        parsed = events.parse(body)
        routed = [(ev, [r.name for r in self.app.match(ev)]) for ev in parsed]
        invocations = [Invocation(function=fn, event=ev) for ev, fns in routed for fn in fns]
        await asyncio.gather(
            *(
                self.publisher.publish(
                    self.queues.function(inv.function),
                    dumps(inv),
                    # No message id: the broker adapter gives each publish its own.
                    # aiormq matches a returned message to its publish by message id,
                    # and one event fanned out to two functions would share one.
                    headers={Header.EVENT_ID: inv.event.event_id},
                )
                for inv in invocations
            )
        )
        for ev, fns in routed:
            if fns:
                self.observer.dispatched(ev, fns)
            else:
                self.observer.unmatched(ev)
        return invocations

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Route one ingress message; bad ones go to the ingress dead-letter queue.

        Acked once every invocation is confirmed; what raises is rejected by the
        consumer (never requeued at once).
        """
        try:
            await self.route(message.body)
        except EventError as exc:
            await self._dead_letter(message, exc.reason)
            return
        except BrokerError as exc:
            # Not requeued at once (a hot loop, unbounded on RabbitMQ 4): the ingress
            # dead-letters it to its dead-letter queue, to be replayed once the cause
            # (e.g. a missing function queue: run `bucketfn init`) is fixed. Copies
            # already published are harmless: the worker's idempotency check skips them.
            log.exception("routing publish failed, dead-lettering the event", error=str(exc))
            await message.reject(requeue=False)
            return
        await message.ack()

    async def drain(self, message: AbstractIncomingMessage) -> None:
        """One message the events exchange could not route (its alternate exchange's).

        Carrying this deployment's routing key, it is one of our events that came
        while the ingress was unbound: routed now, like any ingress message.
        Any other key is no deployment's we know of: a dead letter saying so,
        which ``dlq replay`` sends to the ingress once it is wanted.
        """
        if self.routing_key is not None and message.routing_key == self.routing_key:
            log.warning("routing an event that reached the events exchange unbound")
            await self.handle(message)
            return
        reason = (
            f"unroutable: published with routing key {message.routing_key!r}, which "
            f"no queue binds (this deployment's is {self.routing_key!r})"
        )
        await self._dead_letter(message, reason)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        # The body goes as it came, never re-wrapped: it fitted the broker's
        # maximum message size once, and base64 or JSON escapes could take it past.
        # One id per letter: two equal bodies are two entries, and aiormq matches a
        # returned publish by message id, so no two publishes in flight share one.
        ident = f"{digest(message.body)}-{uuid.uuid4().hex[:8]}"
        await self.publisher.publish(
            self.queues.ingress_dlq,
            message.body,
            message_id=ident,
            headers={Header.KIND: IngressDeadLetter.KIND, **raw_headers(reason)},
        )
        await message.ack()
        self.observer.rejected(None, reason, ident)
