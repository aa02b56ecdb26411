"""End-to-end fixtures: the real runtime, in this process, against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import functions
from runtime import App, ObjectEvent
from runtime.adapters.topology import queue_arguments
from runtime.core.records import Invocation
from runtime.core.settings import Settings
from runtime.engine.observer import Observer
from runtime.engine.outcome import Outcome
from runtime.engine.process import serve
from runtime.ops.provision import init
from tests.e2e import apps
from tests.servers import (
    delete_queues,
    ensure_test_target,
    make_settings,
    remove_rules,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

APP = App([*functions.routers, apps.router], versioned=functions.app.versioned)


class Seen(Observer):
    """What the in-process runtime reported: the positive signals negative checks wait for."""

    def __init__(self) -> None:
        self.routed: list[tuple[str, str]] = []  # (key, event name) dispatched to a function
        self.events: list[ObjectEvent] = []  # the events themselves, as the store sent them
        self.unrouted: list[tuple[str, str]] = []
        self.outcomes: list[tuple[str, str, str]] = []  # (function, key, status)
        self._changed = asyncio.Event()

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        self.routed.append((event.key, event.event_name))
        self.events.append(event)
        self._poke()

    def unmatched(self, event: ObjectEvent) -> None:
        self.unrouted.append((event.key, event.event_name))
        self._poke()

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        self.outcomes.append((invocation.function, invocation.event.key, outcome.status.value))
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, check: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until ``check()`` holds, woken by each report (never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            assert left > 0, "the runtime never reported what the test waited for"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))


@dataclass
class Stack:
    settings: Settings
    s3: S3Client
    app: App
    seen: Seen

    async def settle(self) -> None:
        """Upload a sentinel and wait until it is processed: events written before it
        have been consumed by then (MinIO sends one deployment's events in order)."""
        key = f"uploads/{unique('sentinel')}/s.csv"
        await asyncio.to_thread(self.s3.put_object, Bucket="job-inputs", Key=key, Body=b"a\n1\n")
        await self.seen.until(
            lambda: ("csv_row_count", key, "ok") in self.seen.outcomes, timeout=60
        )


@pytest.fixture(scope="session", autouse=True)
async def test_target() -> None:
    """The test deployment's MinIO target, before any module puts rules naming it."""
    settings = make_settings()
    await require_rabbitmq(settings)
    await ensure_test_target(settings)


@contextlib.asynccontextmanager
async def running(app: App, settings: Settings) -> AsyncIterator[Seen]:
    """The runtime in this process until the block ends, and what it saw.

    Fails the test if the runtime does not become ready within 30 s, and if it
    fails on its way down: that is a failure of the suite, not a detail.
    """
    stop, ready, seen = asyncio.Event(), asyncio.Event(), Seen()
    task = asyncio.create_task(serve(app, settings, stop, ready=ready, observers=(seen,)))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the startup error
    if not ready.is_set():
        waiter.cancel()
        task.cancel()
        pytest.fail("the runtime did not become ready within 30 s", pytrace=False)
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    settings = make_settings()
    await require_rabbitmq(settings)
    client = s3_client(settings)
    require_minio(client)
    await init(APP, settings)
    async with running(APP, settings) as seen:
        yield Stack(settings=settings, s3=client, app=APP, seen=seen)
    await remove_rules(settings, {r.bucket for r in APP.routes})
    await delete_queues(settings, list(queue_arguments(settings, APP)))
