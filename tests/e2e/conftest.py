"""End-to-end fixtures: the real runtime, in this process, against real servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import functions
from runtime import App
from runtime.adapters.topology import queue_arguments
from runtime.core.settings import Settings
from runtime.engine.process import serve
from runtime.ops.provision import init
from tests.e2e import apps
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

APP = App([*functions.routers, apps.router], versioned=functions.app.versioned)


@dataclass
class Stack:
    settings: Settings
    s3: S3Client
    app: App


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    settings = make_settings()
    await require_rabbitmq(settings)
    client = s3_client(settings)
    require_minio(client)
    await init(APP, settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(APP, settings, stop, ready=ready))
    done, _ = await asyncio.wait(
        {task, asyncio.create_task(ready.wait())}, timeout=30, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()  # raises the startup error
    yield Stack(settings=settings, s3=client, app=APP)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 60)
    await remove_rules(settings, {r.bucket for r in APP.routes})
    await delete_queues(settings, list(queue_arguments(settings, APP)))
