"""The broker's side of least privilege: the alternate-exchange policy and two identities.

``bucketfn init`` runs as the admin identity of ``amqp_url`` and sets, through
the management API, idempotently:

- the policy giving the events exchange its alternate exchange
  (:func:`runtime.adapters.topology.unrouted_policy`), refusing to shadow
  another policy that already applies to that exchange;
- ``<prefix>-runtime``: configure and write on this deployment's names only,
  never the events exchange or its alternate (so it cannot publish an event,
  or a forged sequencer, as MinIO would), read on those two exchanges to bind
  its queues to them;
- ``<prefix>-publisher``, MinIO's: configure and write on the events exchange
  alone (MinIO re-declares it before each publish, and RabbitMQ checks
  ``configure`` for a declare), read on nothing: it cannot consume.

RabbitMQ checks a publish against the *exchange* only. The runtime publishes
to its queues through the default exchange (``amq.default`` in permissions),
so it may publish to any queue of the vhost by name, its own ingress included;
what it cannot do is publish to the events exchange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from runtime.adapters.management import Management, Permissions
from runtime.adapters.topology import unrouted_policy
from runtime.core.errors import ConfigError
from runtime.core.names import unrouted_exchange

if TYPE_CHECKING:
    from runtime.core.settings import Settings

_SERVER_NAMED = r"amq\.gen-.*"  # exclusive queues the broker names (`bucketfn watch`)


def runtime_permissions(settings: Settings) -> Permissions:
    """Everything under ``<prefix>.``, minus MinIO's exchange and its alternate."""
    own = rf"{re.escape(settings.queue_prefix)}\..*"
    exchanges = [re.escape(settings.exchange), re.escape(unrouted_exchange(settings.exchange))]
    # The events exchange may itself sit under the prefix (bucketfn.events): excluded
    # by a lookahead (RabbitMQ matches permissions with Erlang's PCRE `re`).
    not_events = f"(?!(?:{'|'.join(exchanges)})$)"
    return Permissions(
        configure=f"^{not_events}(?:{own}|{_SERVER_NAMED})$",
        write=f"^{not_events}(?:{own}|{_SERVER_NAMED}|amq\\.default)$",
        read=f"^(?:{own}|{_SERVER_NAMED}|{'|'.join(exchanges)})$",
    )


def publisher_permissions(settings: Settings) -> Permissions:
    """The events exchange, to declare and publish to; nothing to read."""
    events = f"^{re.escape(settings.exchange)}$"
    return Permissions(configure=events, write=events, read="^$")


def _applies(policy: dict[str, Any], exchange: str) -> bool:
    # Python's re and Erlang's agree on the plain patterns policies use.
    if policy.get("apply-to") not in {"exchanges", "all"}:
        return False
    try:
        return re.search(str(policy.get("pattern", "")), exchange) is not None
    except re.error:
        return False


async def ensure_policy(api: Management, settings: Settings) -> bool:
    """Set the alternate-exchange policy (True if it changed); never displace another."""
    ours = unrouted_policy(settings)
    policies = await api.policies()
    others = [
        p["name"] for p in policies if p.get("name") != ours.name and _applies(p, settings.exchange)
    ]
    if others:
        # An exchange has one effective policy: ours would hide theirs, or theirs ours.
        raise ConfigError(
            f"policy {others[0]!r} already applies to the events exchange "
            f"{settings.exchange!r}; add alternate-exchange={ours.name!r} to it and "
            "narrow ours away, or narrow its pattern: an exchange has one effective policy"
        )
    current = next((p for p in policies if p.get("name") == ours.name), None)
    if current is not None and all(current.get(k) == v for k, v in ours.body().items()):
        return False
    await api.put_policy(ours)
    return True


_HASHES = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
}


def same_password(user: dict[str, Any], password: str) -> bool:
    """Whether the broker's stored hash is of ``password`` (base64 of salt + hash(salt + pw))."""
    hasher = _HASHES.get(str(user.get("hashing_algorithm")))
    if hasher is None or not user.get("password_hash"):
        return False
    stored = base64.b64decode(str(user["password_hash"]))
    salt = stored[:4]
    return hmac.compare_digest(stored, salt + hasher(salt + password.encode()).digest())


async def _ensure_user(api: Management, user: str, password: str, perms: Permissions) -> bool:
    found = await api.user(user)
    changed = False
    if found is None or not same_password(found, password) or found.get("tags"):
        await api.put_user(user, password)
        changed = True
    if await api.permissions(user) != perms:
        await api.set_permissions(user, perms)
        changed = True
    return changed


async def ensure_identities(api: Management, settings: Settings) -> list[str]:
    """Create or update the users whose password is set; return those that changed.

    An unset password leaves that user alone: an ``init`` run without the
    secrets (a test run, an operator's shell) never resets a live identity.
    """
    q = settings.queues
    wanted = [
        (q.runtime_user, settings.amqp_runtime_password, runtime_permissions(settings)),
        (q.publisher_user, settings.amqp_publisher_password, publisher_permissions(settings)),
    ]
    changed: list[str] = []
    for user, password, perms in wanted:
        if password is not None and await _ensure_user(
            api, user, password.get_secret_value(), perms
        ):
            changed.append(user)
    return changed


async def provision(settings: Settings) -> dict[str, Any]:
    """The policy and both identities; what ``init`` changed, for its report."""
    async with Management.connect(settings) as api:
        policy = await ensure_policy(api, settings)
        users = await ensure_identities(api, settings)
    return {"policy_changed": policy, "identities_changed": users}


async def remove(settings: Settings) -> None:
    """Remove this deployment's identities (a test run's cleanup; the policy is shared)."""
    async with Management.connect(settings) as api:
        for user in (settings.queues.runtime_user, settings.queues.publisher_user):
            await api.delete_user(user)
