"""Integration fixtures: a real RabbitMQ (and MinIO), with a queue prefix per run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from functions import app as functions_app
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.settings import Settings
from tests.servers import (
    delete_queues,
    ensure_test_target,
    make_settings,
    remove_rules,
    require_rabbitmq,
)


@pytest.fixture(scope="session", autouse=True)
async def test_target() -> None:
    """The test deployment's MinIO target, before any module puts rules naming it."""
    settings = make_settings()
    await require_rabbitmq(settings)
    await ensure_test_target(settings)


@pytest.fixture(scope="session")
async def settings() -> AsyncIterator[Settings]:
    s = make_settings()
    await require_rabbitmq(s)
    yield s
    await delete_queues(s, list(queue_arguments(s, functions_app)))
    await remove_rules(s, {r.bucket for r in functions_app.routes})


@pytest.fixture(scope="session")
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    async with Broker.connect(settings) as b:
        await b.declare(settings, functions_app)
        yield b
