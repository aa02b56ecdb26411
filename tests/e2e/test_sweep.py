"""The reconciliation sweep on the real stack: it heals what no event ran, with one sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.engine.observer import Observer
from runtime.engine.process import serve
from runtime.ops.sweep import sweeping
from tests.servers import (
    delete_queues,
    make_settings,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
    wait_for_object,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = f"e2e-sweep-{unique()}/"
router = Router()


@router.function(bucket="job-inputs", prefix=PREFIX)
async def swept(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    return {"size": sum([len(c) async for c in ctx.read(event)])}


# No `bucketfn init`: no notification rule exists for PREFIX, so no event ever
# arrives and only the sweep can find these objects — a missed event, on purpose.
APP = App([router])


class Heals(Observer):
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.threads: set[int] = set()

    def healed(self, function: str, event: ObjectEvent, age: float | None) -> None:
        self.keys.append(event.key)
        self.threads.add(threading.get_ident())


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    s = make_settings().model_copy(update={"sweep_interval": 0.3, "sweep_grace": 0})
    await require_rabbitmq(s)
    require_minio(s3_client(s))
    yield s
    await delete_queues(s, list(queue_arguments(s, APP)))


async def _until(check: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_an_object_no_event_announced_gets_its_result(settings: Settings) -> None:
    s3 = s3_client(settings)
    key = f"{PREFIX}missed-{unique()}.bin"
    await asyncio.to_thread(s3.put_object, Bucket="job-inputs", Key=key, Body=b"12345")
    stop, ready = asyncio.Event(), asyncio.Event()
    heals = Heals()
    runtime = asyncio.create_task(serve(APP, settings, stop, ready=ready))
    sweeper = asyncio.create_task(sweeping(APP, settings, stop, observer=heals))
    try:
        result = await wait_for_object(s3, "job-outputs", result_key("swept", key), timeout=60)
        assert result["status"] == "ok" and result["output"] == {"size": 5}
        assert key in heals.keys
        # The sweep listed and healed on a thread of its own, not on the runtime's loop
        # (parsing its listings there stalled every invocation in flight).
        assert heals.threads and threading.get_ident() not in heals.threads
        # Once the result exists, later passes find it done. The checkpoint is
        # rewritten (with its time) after every pass: two new bodies, two passes.
        seen = {_checkpoint(s3, settings)}

        def two_more_passes() -> bool:
            seen.add(_checkpoint(s3, settings))
            return len(seen) >= 3

        await _until(two_more_passes)
        assert heals.keys.count(key) == 1, heals.keys
    finally:
        stop.set()
        await asyncio.gather(runtime, sweeper, return_exceptions=True)
    await asyncio.to_thread(s3.delete_object, Bucket="job-inputs", Key=key)


def _checkpoint(s3: S3Client, settings: Settings) -> bytes:
    key = settings.queues.checkpoint("swept")
    body: bytes = s3.get_object(Bucket="job-outputs", Key=key)["Body"].read()
    return body


async def test_one_sweeper_at_a_time_and_another_takes_over(settings: Settings) -> None:
    s3 = s3_client(settings)
    key = f"{PREFIX}lease-{unique()}.bin"
    # No runtime runs, so the object stays pending and every pass heals it again.
    await asyncio.to_thread(s3.put_object, Bucket="job-inputs", Key=key, Body=b"x")
    a_stop, b_stop = asyncio.Event(), asyncio.Event()
    a, b = Heals(), Heals()
    first = asyncio.create_task(sweeping(APP, settings, a_stop, observer=a))
    await _until(lambda: len(a.keys) >= 1)  # a holds the token
    second = asyncio.create_task(sweeping(APP, settings, b_stop, observer=b))
    try:
        await _until(lambda: len(a.keys) >= 4)  # several more passes, with b waiting
        assert b.keys == []
        a_stop.set()
        await first
        await _until(lambda: len(b.keys) >= 1)  # the token went to b
        taken = len(a.keys)
        await _until(lambda: len(b.keys) >= 3)
        assert len(a.keys) == taken
    finally:
        a_stop.set()
        b_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(first, second)
    await asyncio.to_thread(s3.delete_object, Bucket="job-inputs", Key=key)
