"""The RabbitMQ topology of a deployment, as plain data: exchanges, queues, bindings, policy.

Every queue is a durable quorum queue. Queue arguments are fixed when a queue
is first declared (RabbitMQ never changes them in place), so they are computed
here, once, for ``init``, the runtime and the tests alike.

MinIO's AMQP target checks only the publisher confirm, and RabbitMQ confirms a
message no queue binds right after returning it: an event published while the
ingress is unbound would be lost. So the events exchange has an *alternate
exchange*, a fanout into each deployment's ``unrouted`` queue, which the
dispatcher drains. It is set by a policy, not a declare argument: MinIO
re-declares the exchange before every publish with no arguments, and a
declare that differs from the exchange's arguments fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.adapters.management import Policy
from runtime.core.names import unrouted_exchange
from runtime.core.retry import tiers_for

if TYPE_CHECKING:
    from runtime.app.router import App, Route
    from runtime.core.names import Queues
    from runtime.core.settings import Settings

_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
# RabbitMQ 4 gives every quorum queue a default delivery limit of 20 and drops
# a message past it when the queue has no dead-letter exchange. Listing a
# dead-letter queue returns each message to it, which can count as a delivery,
# so dead-letter queues get a limit that no amount of listing reaches.
_KEEP: dict[str, Any] = {**_QUORUM, "x-delivery-limit": 1_000_000_000}


def _dead_letter_to(queue: str) -> dict[str, Any]:
    # at-least-once dead-lettering keeps a message in its source queue until the
    # target confirms it; it requires reject-publish overflow.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def queue_arguments(settings: Settings, app: App) -> dict[str, dict[str, Any]]:
    """Every queue bucketfn needs, with its arguments; the topology as data."""
    q = settings.queues
    # A message redelivered delivery_limit times (its consumer crashed or was
    # killed on it each time) is dead-lettered by the broker itself. RabbitMQ 4
    # applies a default limit of 20 and *drops* the message when no dead-letter
    # exchange is set; here every queue with a limit has one.
    limit = settings.delivery_limit
    queues: dict[str, dict[str, Any]] = {
        q.ingress: {
            **_QUORUM,
            "x-delivery-limit": limit,
            **_dead_letter_to(q.ingress_dlq),
        },
        q.ingress_dlq: dict(_KEEP),
        # What the events exchange could not route; drained like the ingress.
        q.unrouted: {
            **_QUORUM,
            "x-delivery-limit": limit,
            **_dead_letter_to(q.ingress_dlq),
        },
        # One token circulates here; the single active consumer holding it is the
        # one sweeper of the deployment. A holder that dies returns the token, which
        # must never reach a delivery limit, hence _KEEP's.
        q.sweep: {**_KEEP, "x-single-active-consumer": True},
    }
    for route in app.routes:
        queues.update(function_queues(q, route, limit))
    return queues


def function_queues(q: Queues, route: Route, limit: int) -> dict[str, dict[str, Any]]:
    """The work queue, dead-letter queue and delay tiers of one function."""
    work = q.function(route.name)
    out: dict[str, dict[str, Any]] = {
        work: {
            **_QUORUM,
            "x-delivery-limit": limit,
            **_dead_letter_to(q.dead_letter(route.name)),
        },
        q.dead_letter(route.name): dict(_KEEP),
    }
    for tier in tiers_for(route.retry):
        out[q.retry(route.name, tier)] = {
            **_QUORUM,
            # Static per queue: RabbitMQ expires messages in order, at the head.
            "x-message-ttl": tier,
            **_dead_letter_to(work),
        }
    return out


@dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange bucketfn declares (durable, never auto-deleted, no arguments)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Binding:
    """``queue`` receives what ``exchange`` routes with ``routing_key``."""

    queue: str
    exchange: str
    routing_key: str


def exchanges(settings: Settings) -> list[Exchange]:
    """The events exchange (declared exactly as MinIO does) and its alternate exchange."""
    return [
        Exchange(settings.exchange, settings.exchange_type),
        Exchange(unrouted_exchange(settings.exchange), "fanout"),
    ]


def bindings(settings: Settings) -> list[Binding]:
    """The ingress on the events exchange; the unrouted queue on its alternate exchange."""
    q = settings.queues
    return [
        Binding(q.ingress, settings.exchange, settings.routing_key),
        Binding(q.unrouted, unrouted_exchange(settings.exchange), ""),
    ]


def unrouted_policy(settings: Settings) -> Policy:
    """The policy that gives the events exchange its alternate exchange.

    ``apply-to: exchanges`` and a pattern matching that one name: an object
    has one effective policy, so this never displaces a queue policy.
    """
    ae = unrouted_exchange(settings.exchange)
    return Policy(
        name=ae,
        pattern=f"^{re.escape(settings.exchange)}$",
        definition={"alternate-exchange": ae},
        apply_to="exchanges",
    )
