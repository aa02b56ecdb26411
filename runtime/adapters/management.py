"""RabbitMQ's management HTTP API: policies, users and permissions, which AMQP cannot set.

Used by ``bucketfn init`` alone, with the admin identity of ``amqp_url``. The
management plugin ships with both brokers bucketfn runs on (Debian's 3.10
enables it in ``infra/local/rabbitmq.sh``; compose's ``4.3-management`` image
has it), and its API for these three is the same on both. ``rabbitmqctl``
would need the node's Erlang cookie, or ``docker exec`` under compose.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from runtime.core.errors import BrokerError

if TYPE_CHECKING:
    from runtime.core.settings import Settings

_PORT_OFFSET = 10_000  # RabbitMQ's own pairing: AMQP 5672, management 15672


@dataclass(frozen=True, slots=True)
class Permissions:
    """A user's three regular expressions over resource names in one vhost."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A RabbitMQ policy: a definition applied to the objects whose name matches."""

    name: str
    pattern: str
    definition: dict[str, Any]
    apply_to: str
    priority: int = 0

    def body(self) -> dict[str, Any]:
        """The API's JSON for it."""
        return {
            "pattern": self.pattern,
            "definition": self.definition,
            "apply-to": self.apply_to,
            "priority": self.priority,
        }


def endpoint(settings: Settings) -> tuple[str, str, tuple[str, str]]:
    """(base URL, vhost, credentials) of the management API that ``amqp_url`` implies."""
    amqp = urlsplit(settings.amqp_url.get_secret_value())
    # AMQP URIs: an empty path or "/" is the default vhost "/"; "/%2F" spells it too.
    vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
    auth = (unquote(amqp.username or "guest"), unquote(amqp.password or "guest"))
    if settings.amqp_management_url:
        return settings.amqp_management_url.rstrip("/"), vhost, auth
    host = amqp.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{(amqp.port or 5672) + _PORT_OFFSET}", vhost, auth


class Management:
    """A client of one vhost's policies, and of the broker's users and permissions."""

    def __init__(self, client: httpx.AsyncClient, vhost: str) -> None:
        self.client = client
        self.vhost = quote(vhost, safe="")

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[Management]:
        """A client with ``amqp_url``'s credentials (the admin identity init runs as)."""
        base, vhost, auth = endpoint(settings)
        async with httpx.AsyncClient(base_url=f"{base}/api", auth=auth, timeout=30.0) as client:
            yield cls(client, vhost)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise BrokerError(
                f"RabbitMQ's management API at {self.client.base_url} cannot be reached "
                f"({type(exc).__name__}: {exc}); set BUCKETFN_AMQP_MANAGEMENT_URL"
            ) from exc
        if response.status_code == 404 and method in {"GET", "DELETE"}:
            return None
        if response.is_error:
            raise BrokerError(
                f"RabbitMQ's management API refused {method} {path}: "
                f"{response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    async def policies(self) -> list[dict[str, Any]]:
        """Every policy of the vhost, as the API lists them."""
        found: list[dict[str, Any]] = await self._call("GET", f"/policies/{self.vhost}") or []
        return found

    async def put_policy(self, policy: Policy) -> None:
        """Create or replace ``policy`` (idempotent)."""
        name = quote(policy.name, safe="")
        await self._call("PUT", f"/policies/{self.vhost}/{name}", policy.body())

    async def delete_policy(self, name: str) -> None:
        """Remove a policy if it exists."""
        await self._call("DELETE", f"/policies/{self.vhost}/{quote(name, safe='')}")

    async def user(self, name: str) -> dict[str, Any] | None:
        """A user as the API shows it, or None."""
        found: dict[str, Any] | None = await self._call("GET", f"/users/{quote(name, safe='')}")
        return found

    async def put_user(self, name: str, password: str) -> None:
        """Create or update a user with no tags: no management access, AMQP only."""
        body = {"password": password, "tags": ""}
        await self._call("PUT", f"/users/{quote(name, safe='')}", body)

    async def delete_user(self, name: str) -> None:
        """Remove a user if it exists (its permissions go with it)."""
        await self._call("DELETE", f"/users/{quote(name, safe='')}")

    async def permissions(self, user: str) -> Permissions | None:
        """``user``'s permissions on the vhost, or None."""
        path = f"/permissions/{self.vhost}/{quote(user, safe='')}"
        found = await self._call("GET", path)
        if not found:
            return None
        return Permissions(found["configure"], found["write"], found["read"])

    async def set_permissions(self, user: str, perms: Permissions) -> None:
        """Set ``user``'s permissions on the vhost (replacing any)."""
        path = f"/permissions/{self.vhost}/{quote(user, safe='')}"
        body = {"configure": perms.configure, "write": perms.write, "read": perms.read}
        await self._call("PUT", path, body)
