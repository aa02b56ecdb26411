"""MinIO's admin API, for ``bucketfn init``: users, policies and notification targets.

Through the ``minio`` SDK's :class:`~minio.MinioAdmin`, which signs the requests
and implements the payload encryption the admin API requires. The SDK is
synchronous (urllib3), so every call runs in a thread; ``init`` makes a handful.
Only the admin identity may call any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import urllib3
from minio import MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException

from runtime.core.errors import StorageError
from runtime.core.settings import Settings

T = TypeVar("T")
AMQP = "notify_amqp"


class Admin:
    """One MinIO's admin API, as the identity in ``s3_access_key``."""

    def __init__(self, client: MinioAdmin) -> None:
        self._admin = client

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[Admin]:
        """An admin client for ``settings.s3_endpoint``."""
        url = urlsplit(settings.s3_endpoint)
        # Few retries, short timeouts: init reports a dead server instead of waiting minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=15),
            retries=urllib3.Retry(total=2, backoff_factor=0.2),
        )
        client = MinioAdmin(
            endpoint=url.netloc,
            credentials=StaticProvider(
                settings.s3_access_key, settings.s3_secret_key.get_secret_value()
            ),
            region=settings.s3_region,
            secure=url.scheme == "https",
            http_client=http,
        )
        try:
            yield cls(client)
        finally:
            http.clear()

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        # UnboundLocalError: minio 7.2's config_get masks a failed request with one.
        except (
            MinioAdminException,
            urllib3.exceptions.HTTPError,
            OSError,
            UnboundLocalError,
        ) as exc:
            raise StorageError(f"MinIO admin: {what}: {exc}") from exc

    async def policy(self, name: str) -> dict[str, Any] | None:
        """The canned policy ``name``'s document, or None if there is none."""
        try:
            raw = await asyncio.to_thread(self._admin.policy_info, name)
        except MinioAdminException as exc:
            if "NoSuchPolicy" in str(exc) or "XMinioAdminNoSuchPolicy" in str(exc):
                return None
            raise StorageError(f"MinIO admin: reading policy {name}: {exc}") from exc
        doc: Any = orjson.loads(raw)
        # Newer servers wrap the document with its metadata.
        found = doc.get("Policy", doc) if isinstance(doc, dict) else None
        return found if isinstance(found, dict) else None

    async def user_policy(self, user: str) -> str | None:
        """The policy names attached to ``user`` (comma-separated), None if no such user."""
        try:
            raw = await asyncio.to_thread(self._admin.user_info, user)
        except MinioAdminException as exc:
            if "NoSuchUser" in str(exc):
                return None
            raise StorageError(f"MinIO admin: reading user {user}: {exc}") from exc
        info: Any = orjson.loads(raw)
        return str(info.get("policyName", "")) if isinstance(info, dict) else ""

    async def ensure_identity(
        self, user: str, secret: str, policy_name: str, document: Mapping[str, Any]
    ) -> bool:
        """User ``user`` with ``secret`` and only ``policy_name`` = ``document``; True if changed.

        The secret is set every time (the admin API cannot read it back to
        compare); the policy and its attachment only when they differ.
        """
        changed = False
        if _normal(await self.policy(policy_name)) != _normal(document):
            body = dict(document)
            await self._call(
                f"writing policy {policy_name}",
                lambda: self._admin.policy_add(policy_name, policy=body),
            )
            changed = True
        attached = await self.user_policy(user)
        await self._call(f"setting user {user}", lambda: self._admin.user_add(user, secret))
        if attached != policy_name:
            # Replaces whatever was attached: the user holds exactly this policy.
            await self._call(
                f"attaching {policy_name} to {user}",
                lambda: self._admin.policy_set(policy_name, user=user),
            )
            changed = True
        return changed

    async def remove_identity(self, user: str) -> None:
        """Remove user ``user`` and its policy of the same name (either may be gone already)."""
        for what, call in (
            (f"removing user {user}", lambda: self._admin.user_remove(user)),
            (f"removing policy {user}", lambda: self._admin.policy_remove(user)),
        ):
            with contextlib.suppress(StorageError):
                await self._call(what, call)

    async def arns(self) -> set[str]:
        """The notification target ARNs MinIO has loaded (from its env or its stored config)."""
        raw = await self._call("reading server info", self._admin.info)
        info: Any = orjson.loads(raw)
        listed = info.get("sqsARN") if isinstance(info, dict) else None
        return {str(a) for a in listed or []}

    async def configured(self) -> set[str]:
        """The ids of the AMQP targets in MinIO's config or env, loaded or not."""
        raw = await self._call(f"reading {AMQP}", lambda: self._admin.config_get(AMQP))
        heads = (line.split(" ", 1)[0] for line in raw.splitlines())
        return {h.removeprefix(f"{AMQP}:") for h in heads if h.startswith(f"{AMQP}:")}

    async def add_target(self, target_id: str, config: Mapping[str, str] | None) -> None:
        """Store AMQP target ``target_id`` (unless ``config`` is None), restart MinIO to load it.

        MinIO's notification targets are not a dynamic subsystem (cmd/config:
        ``SubSystemsDynamic``): a target set through the admin API is stored but
        loaded only at start, hence the restart. MinIO connects to the broker to
        validate a target before it stores it.
        """
        if config is not None:
            values = dict(config)
            await self._call(
                f"setting {AMQP}:{target_id}",
                lambda: self._admin.config_set(f"{AMQP}:{target_id}", values),
            )
        await self._call("restarting MinIO", self._admin.service_restart)

    async def wait_for_arn(self, arn: str, within: float = 60.0) -> None:
        """Wait until MinIO (back from a restart) has loaded the target ``arn``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            # A server still restarting refuses the connection: that is not an answer yet.
            with contextlib.suppress(StorageError):
                if arn in await self.arns():
                    return
            if loop.time() > deadline:
                raise StorageError(f"MinIO did not load the target {arn} within {within:g} s")
            await asyncio.sleep(0.25)


def _normal(doc: Any) -> Any:
    """A policy with its lists in one order: MinIO returns a statement's resources as a set."""
    if isinstance(doc, Mapping):
        return {k: _normal(v) for k, v in doc.items()}
    if isinstance(doc, list):
        items = [_normal(v) for v in doc]
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return doc
