"""A runtime wired as ``bucketfn run`` wires it — feed, metrics, health — in this process.

The session's ``stack`` runtime (``conftest.py``) runs without the feed, and
the console's recent invocations come from the feed alone; so the console's
tests run a deployment of their own, with its own queue prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aio_pika

from runtime.adapters.topology import queue_arguments
from runtime.engine.feed import Feed
from runtime.engine.health import Health
from runtime.engine.process import serve
from runtime.http import Metrics, running
from runtime.ops.provision import init
from tests.servers import (
    delete_queues,
    make_settings,
    remove_rules,
    require_minio,
    require_rabbitmq,
    s3_client,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runtime import App
    from runtime.core.settings import Settings


@dataclass
class Live:
    """A running deployment: its settings (metrics on a port of their own) and an S3 client."""

    settings: Settings
    s3: S3Client


def free_port() -> int:
    """A loopback port nobody listens on now (the API must be told it: no port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def runtime(app: App) -> AsyncIterator[Live]:
    """Provision a fresh deployment of ``app`` and run it until the block ends; then remove it."""
    settings = make_settings().model_copy(update={"metrics_address": f"127.0.0.1:{free_port()}"})
    await require_rabbitmq(settings)
    client = s3_client(settings)
    require_minio(client)
    await init(app, settings)
    health, feed = Health(), Feed(settings)
    metrics = Metrics(r.name for r in app.routes)
    stop, ready = asyncio.Event(), asyncio.Event()
    try:
        async with running(settings, metrics, health), feed.publishing():
            task = asyncio.create_task(
                serve(app, settings, stop, ready=ready, observers=(metrics, feed), health=health)
            )
            started = asyncio.create_task(ready.wait())
            done, _ = await asyncio.wait(
                {task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()  # raises the startup error
            assert started in done, "the runtime was not ready within 30 s"
            try:
                yield Live(settings=settings, s3=client)
            finally:
                stop.set()
                await asyncio.wait_for(task, 60)
    finally:
        await remove_rules(settings, {r.bucket for r in app.routes})
        await delete_queues(settings, list(queue_arguments(settings, app)))
        with contextlib.suppress(Exception):  # the feed's transient exchange, as test_feed does
            conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
            async with conn:
                await (await conn.channel()).exchange_delete(settings.queues.feed)
