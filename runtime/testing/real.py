"""The real stack behind the harness's interface: the deployed runtime, in this process.

On open it deploys the functions' routes as a deployment of its own: the test
deployment (:data:`DEPLOYMENT`: its own MinIO target and routing key, so a
``make up`` runtime never takes its events), a unique queue prefix (its own
queues, and ids for its notification rules) and a unique output bucket (its
own result records, so nothing another deployment on the same servers writes
is mistaken for them), then starts the dispatcher and workers with
:func:`runtime.engine.process.serve`. ``run`` PUTs the object into MinIO and
waits for the record that MinIO's event, the ingress queue, the dispatcher and
the function's queue lead to. Each route gets one attempt
(``max_attempts=1``), as the harness gives one, so a failure is its exception
at once rather than minutes of backoff; the handler runs in this process, so
that is the very exception it raised (a failure outside the handler is rebuilt
from the record). On exit it removes what it made: rules, queues, the objects
it stored, the buckets it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from runtime.adapters.amqp import Broker
from runtime.adapters.iam import Admin
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.app.explain import verdict
from runtime.app.router import App, Route, Router, load_app
from runtime.app.rules import Rule, derive, merged
from runtime.core.errors import ConfigError
from runtime.core.events import PUT
from runtime.core.names import Deployment, Meta, result_key
from runtime.core.records import Result
from runtime.core.settings import load
from runtime.engine.process import serve
from runtime.ops import identity
from runtime.testing.failures import rebuild

if TYPE_CHECKING:
    from runtime.app.context import Context
    from runtime.app.router import Handler
    from runtime.core.events import ObjectEvent
    from runtime.core.settings import Settings

STARTUP_TIMEOUT = 30.0
DEPLOYMENT = "bft"
"""The deployment a real stack runs as: never ``make up``'s (``bucketfn``).

Its own MinIO target and routing key, so a runtime of another deployment on the
same servers never consumes its events, nor it theirs. Fixed, so its target,
which MinIO loads only on a restart, is added once per MinIO and then reused.
"""


class RealStack:
    """Functions deployed on the servers ``BUCKETFN_*`` names, driven like the harness."""

    def __init__(self, app: App, settings: Settings, storage: S3Storage, *, wait: float) -> None:
        self.app = app
        self.settings = settings
        self.storage = storage
        self.output_bucket = settings.output_bucket
        self.wait = wait
        self._created: list[str] = []
        self._stored: list[tuple[str, str, str | None]] = []
        # What each handler raised, by (bucket, key, revision) of the object it ran on.
        self.raised: dict[tuple[str, str, str], Exception] = {}
        self._declared: dict[str, Handler] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        functions: Iterable[Handler | Route],
        *,
        versioned: frozenset[str] = frozenset(),
        settings: Settings | None = None,
        wait: float = 60.0,
    ) -> AsyncIterator[RealStack]:
        """Deploy ``functions``, run them until the block ends, then remove every trace."""
        own = _own(settings or load())
        declared = _routes(functions)
        raised: dict[tuple[str, str, str], Exception] = {}
        router = Router()
        router.routes = [_deployable(r, raised) for r in declared]
        app = App([router], versioned=versioned)
        async with S3Storage.connect(own) as storage, Broker.connect(own) as broker:
            real = cls(app, own, storage, wait=wait)
            real.raised = raised
            real._declared = {r.name: r.handler for r in declared}
            stop = asyncio.Event()
            task: asyncio.Task[None] | None = None
            try:
                await _target(own)
                await broker.declare(own, app)
                await real._provision()
                task = await _start(app, own, stop)
                yield real
            finally:
                stop.set()
                if task is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(task, 60)
                await real._teardown(broker)

    def key(self, prefix: str, name: str) -> str:
        """``prefix`` + a segment of its own + ``name``: other runs share these buckets."""
        return f"{prefix}t-{uuid.uuid4().hex[:10]}/{name}"

    async def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes, from the real store."""
        return b"".join([c async for c in self.storage.stream(bucket, key)])

    async def run(
        self,
        function: Handler | Route,
        data: bytes,
        *,
        key: str = "uploads/test.bin",
        bucket: str = "job-inputs",
    ) -> Result:
        """PUT ``data`` at ``bucket/key``; wait for the function's record; return it or raise."""
        route = self._deployed(function)
        answer = verdict(route, bucket, key, PUT, None)
        if not answer.runs:
            raise AssertionError(f"s3://{bucket}/{key} would not run {route.name}: {answer.reason}")
        info = await self.storage.put(bucket, key, data)
        self._stored.append((bucket, key, info.version_id))
        revision = info.version_id or info.etag
        record = result_key(route.name, key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while True:
            head = await self.storage.head(self.output_bucket, record)
            if head is not None and (head.metadata or {}).get(Meta.REVISION) == revision:
                break
            if loop.time() > deadline:
                raise AssertionError(
                    f"no record from {route.name} for s3://{bucket}/{key} within {self.wait:g} s: "
                    f"does MinIO publish to {self.settings.minio_target_arn} "
                    f"(exchange {self.settings.exchange!r})?"
                )
            await asyncio.sleep(0.05)
        result = Result.model_validate_json(await self.read(self.output_bucket, record))
        for url in result.outputs:
            out_bucket, _, out_key = url.removeprefix("s3://").partition("/")
            self._stored.append((out_bucket, out_key, None))
        if result.status == "ok":
            return result
        raised = self.raised.pop((bucket, key, revision or ""), None)
        if raised is not None:
            raise raised
        if result.error is None:  # pragma: no cover - a dead-lettered record always has one
            raise AssertionError(f"{route.name} ended as {result.status}")
        raise rebuild(result.error)

    def _deployed(self, function: Handler | Route) -> Route:
        for route in self.app.routes:
            if function is self._declared.get(route.name) or (
                isinstance(function, Route) and function.name == route.name
            ):
                return route
        raise ConfigError(f"{function!r} is not deployed on this stack: pass it to open_stack")

    async def _provision(self) -> None:
        for bucket in dict.fromkeys([*self.app.buckets, self.output_bucket]):
            if await self.storage.ensure_bucket(bucket, versioned=bucket in self.app.versioned):
                self._created.append(bucket)
        owner = self.settings.queues.rule_prefix
        for bucket, rules in derive(self.app, self.settings.minio_target_arn, owner).items():
            await self._rules(bucket, rules)

    async def _rules(self, bucket: str, rules: list[Rule]) -> None:
        s3 = self.storage.client
        current: Any = await s3.get_bucket_notification_configuration(Bucket=bucket)
        config: Any = merged(current, rules, self.settings.queues.rule_prefix)
        if config is not None:
            await s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=config
            )

    async def _teardown(self, broker: Broker) -> None:
        """Remove what the stack made; each step on its own, so one failure skips nothing."""
        s3 = self.storage.client
        for bucket in {r.bucket for r in self.app.routes}:
            with contextlib.suppress(Exception):
                await self._rules(bucket, [])
        for name in queue_arguments(self.settings, self.app):
            with contextlib.suppress(Exception):
                async with broker.channel() as channel:
                    await channel.queue_delete(name)
        for bucket, key, version in self._stored:
            if bucket in self._created:
                continue
            with contextlib.suppress(Exception):
                if version:
                    await s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
                else:
                    await s3.delete_object(Bucket=bucket, Key=key)
        for bucket in self._created:
            with contextlib.suppress(Exception):
                await _empty(self.storage, bucket)
                await s3.delete_bucket(Bucket=bucket)


def _own(base: Settings) -> Settings:
    """``base`` as this stack's deployment: the test one, with queues and records of its own.

    Set field by field: a copy does not re-derive what follows the deployment.
    """
    token = uuid.uuid4().hex[:10]
    # How MinIO reaches RabbitMQ for the test target, unless set: as this process
    # does (a local stack shares the loopback). No trailing "/": MinIO's AMQP
    # client reads it as the empty vhost, not "/".
    amqp = base.minio_amqp_url or SecretStr(base.amqp_url.get_secret_value().rstrip("/"))
    return base.model_copy(
        update={
            **Deployment(DEPLOYMENT).settings(),
            "minio_amqp_url": amqp,
            "queue_prefix": f"stack-{token}",
            "output_bucket": f"bucketfn-stack-{token}",
        }
    )


async def _target(settings: Settings) -> None:
    """MinIO has the test deployment's target: added (one MinIO restart) on first use only."""
    async with Admin.connect(settings) as admin:
        await identity.ensure_target(admin, settings)


def _routes(functions: Iterable[Handler | Route]) -> list[Route]:
    """The routes ``functions`` were declared with (handlers are looked up in BUCKETFN_APP)."""
    wanted = list(functions)
    if not wanted:
        raise ConfigError("open_stack needs the functions the real stack deploys")
    spec = os.environ.get("BUCKETFN_APP", "functions:app")  # the CLI's own switch
    declared = [] if all(isinstance(f, Route) for f in wanted) else load_app(spec).routes
    found: list[Route] = []
    for function in wanted:
        if isinstance(function, Route):
            found.append(function)
            continue
        route = next((r for r in declared if r.handler is function), None)
        if route is None:
            raise ConfigError(f"{function!r} is not a function of {spec}: pass its Route")
        found.append(route)
    return found


def _deployable(route: Route, raised: dict[tuple[str, str, str], Exception]) -> Route:
    """``route`` with one attempt, its handler keeping what it raises for ``run`` to raise."""
    handler = route.handler

    async def witnessed(event: ObjectEvent, ctx: Context) -> Any:
        try:
            return await handler(event, ctx)
        except Exception as exc:
            raised[(event.bucket, event.key, event.revision)] = exc
            raise

    return dataclasses.replace(
        route,
        handler=witnessed,
        retry=dataclasses.replace(route.retry, max_attempts=1),
    )


async def _start(app: App, settings: Settings, stop: asyncio.Event) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, settings, stop, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait(
        {task, waiting}, timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    waiting.cancel()
    if task in done:
        task.result()  # raises why it could not start
    if not ready.is_set():
        stop.set()
        raise AssertionError(f"the runtime did not start within {STARTUP_TIMEOUT:g} s")
    return task


async def _empty(storage: S3Storage, bucket: str) -> None:
    """Delete every version of every object in ``bucket``."""
    s3 = storage.client
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    async for page in pages:
        doomed: Any = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if doomed:
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
