"""Fixtures shared by the tiers that need real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aio_pika
import boto3
import orjson
import pytest
from botocore.config import Config
from pydantic import SecretStr

from runtime import App, ObjectEvent
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.letters import DeadLetter
from runtime.core.records import ErrorInfo, Invocation
from runtime.core.settings import Settings
from runtime.testing.real import DEPLOYMENT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HINT = "start them with `make test` (or `make servers`)"


# The deployment the real-server tiers run as, never `make up`'s (`bucketfn`): its
# own MinIO target and routing key, so a `make up` runtime on the same servers never
# consumes a test's events, nor a test runtime `make up`'s. The real stack's (one
# target for both). Fixed, not per run: MinIO loads a target only on a restart, so
# the first session on a fresh MinIO adds it and every later one reuses it; a
# per-run queue prefix keeps each run's queues its own.
TEST_DEPLOYMENT = DEPLOYMENT


def make_settings() -> Settings:
    """The test deployment's settings, with a queue prefix of this run's own."""
    base = Settings()
    return Settings(
        deployment=TEST_DEPLOYMENT,
        queue_prefix=f"bft-{uuid.uuid4().hex[:8]}",
        # How MinIO reaches RabbitMQ for the test target: as the tests do (both on
        # the loopback), so it needs no publisher user of its own. No trailing "/":
        # MinIO's AMQP client reads it as the empty vhost, not "/".
        minio_amqp_url=base.minio_amqp_url
        or SecretStr(base.amqp_url.get_secret_value().rstrip("/")),
    )


def deployment_env(settings: Settings) -> dict[str, str]:
    """The environment a ``bucketfn`` subprocess needs to be this test deployment."""
    return {
        **os.environ,
        "BUCKETFN_DEPLOYMENT": settings.deployment,
        "BUCKETFN_QUEUE_PREFIX": settings.queue_prefix,
    }


async def ensure_test_target(settings: Settings) -> None:
    """MinIO has the test deployment's notification target (added, once, if not)."""
    from runtime.adapters.iam import Admin
    from runtime.ops import identity

    try:
        async with Admin.connect(settings) as admin:
            await identity.ensure_target(admin, settings)
    except Exception as exc:
        pytest.fail(
            f"MinIO's notification target {settings.minio_target_arn} for the test "
            f"deployment could not be ensured ({exc}); {HINT}",
            pytrace=False,
        )


async def require_rabbitmq(settings: Settings) -> None:
    """Fail (never skip) when RabbitMQ is not reachable."""
    try:
        conn = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=5)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable ({exc}); {HINT}", pytrace=False)
    await conn.close()


def s3_client(
    settings: Settings, *, endpoint: str | None = None, attempts: int | None = None, pool: int = 10
) -> S3Client:
    """An independent, real S3 client (boto3), as a user would hold.

    Standard retries unless ``attempts`` fixes the tries (1: a refusal is seen as
    it is); ``endpoint`` for another S3 server with the same credentials; ``pool``
    connections for as many threads.
    """
    retries: Any = {"mode": "standard"} if attempts is None else {"max_attempts": attempts}
    return boto3.client(
        "s3",
        endpoint_url=endpoint or settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries=retries, max_pool_connections=pool),
    )


def require_minio(client: S3Client) -> None:
    """Fail (never skip) when MinIO is not reachable."""
    try:
        client.list_buckets()
    except Exception as exc:
        pytest.fail(f"MinIO is not reachable ({exc}); {HINT}", pytrace=False)


async def wait_for_object(
    client: S3Client, bucket: str, key: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll until ``bucket/key`` exists; return it parsed as JSON."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = await asyncio.to_thread(
                lambda: client.get_object(Bucket=bucket, Key=key)["Body"].read()
            )
            doc: dict[str, Any] = orjson.loads(body)
            return doc
        except client.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                pytest.fail(f"{bucket}/{key} did not appear within {timeout} s")
            await asyncio.sleep(0.1)


def unique(prefix: str = "t") -> str:
    """A unique key segment for one test."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def delete_queues(settings: Settings, names: list[str]) -> None:
    """Remove a test run's queues."""
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        for name in names:
            ch = await conn.channel()
            with contextlib.suppress(Exception):
                await ch.queue_delete(name)


async def remove_rules(settings: Settings, buckets: set[str]) -> None:
    """Remove the notification rules a test run's deployment added."""
    from runtime.adapters.s3 import S3Storage
    from runtime.ops import lifecycle
    from runtime.ops.provision import merge_notifications, rule_prefix

    async with S3Storage.connect(settings) as storage:
        for bucket in buckets | {"raw", "staging", settings.output_bucket}:
            with contextlib.suppress(Exception):
                await merge_notifications(storage.client, bucket, [], rule_prefix(settings))
            with contextlib.suppress(Exception):
                await lifecycle.remove(storage.client, rule_prefix(settings), [bucket])


def broker_address(settings: Settings) -> tuple[str, int]:
    """Where ``settings``' RabbitMQ listens (a slot's stack moves it off 5672)."""
    url = urlsplit(settings.amqp_url.get_secret_value())
    return url.hostname or "127.0.0.1", url.port or 5672


class Relay:
    """A TCP relay to RabbitMQ on a loopback port of its own; ``cut`` drops every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.holding = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        """Stop passing the broker's replies on (a broker blocking publishers looks so)."""
        self.holding = True

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, back: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if back and self.holding:
                        continue  # swallowed: the client waits for ever
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))
        self._writers -= {writer, up_writer}


async def queue_contents(settings: Settings, queue: str) -> list[str | None]:
    """Every message id in ``queue``, in order, all given back (as `dlq ls` reads)."""
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, passive=True)
        ids = []
        while (m := await q.get(no_ack=False, fail=False)) is not None:
            ids.append(m.message_id)
    return ids


def probe_event(n: int) -> ObjectEvent:
    """Event ``n`` of a probe function: key ``k<n>`` in ``job-inputs``."""
    return ObjectEvent(
        event_id=f"ev-{n}", event_name="s3:ObjectCreated:Put", bucket="job-inputs", key=f"k{n}"
    )


def dead_letter(function: str, n: int, at: datetime, message: str) -> DeadLetter:
    """The dead letter a permanent error left for ``function``'s event ``n`` at ``at``."""
    return DeadLetter(
        id=f"ev-{n}-1-0",
        function=function,
        function_version="v1",
        reason="permanent error",
        invocation=Invocation(function=function, event=probe_event(n)),
        error=ErrorInfo(type="runtime.core.errors.InputError", message=message, fingerprint="f"),
        dead_lettered_at=at,
    )


@contextlib.asynccontextmanager
async def declared(settings: Settings, app: App) -> AsyncIterator[Broker]:
    """A broker connection with ``app``'s queues declared; they are deleted afterwards."""
    try:
        async with Broker.connect(settings) as broker:
            await broker.declare(settings, app)
            yield broker
    finally:
        await delete_queues(settings, list(queue_arguments(settings, app)))
