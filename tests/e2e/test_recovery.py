"""Recovery paths on the real stack that no other test reaches.

A handler that overruns its timeout, MinIO answering 5xx, a replay whose publish
fails, and a replay of a function that is still broken. The module deploys its own
functions under its own queue prefix and trigger prefix, so nothing else consumes
its events; every wait ends on a result, a dead letter or an observed outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientSession, web

from runtime import App, Context, ObjectEvent, RetryPolicy, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.errors import BrokerError
from runtime.core.names import result_key
from runtime.core.settings import Settings
from runtime.ops.deadletters import DeadLetters, Entry, select
from runtime.ops.provision import init
from tests.e2e.conftest import running
from tests.servers import (
    delete_queues,
    make_settings,
    remove_rules,
    require_minio,
    require_rabbitmq,
    s3_client,
    unique,
    wait_for_object,
)

PREFIX = f"e2e-recovery-{unique()}/"
router = Router()
CALLS: dict[str, int] = {}
BROKEN = {"stubborn": True}


def _called(name: str) -> int:
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]


async def _size(event: ObjectEvent, ctx: Context) -> int:
    return sum([len(chunk) async for chunk in ctx.read(event)])


@router.function(
    bucket="job-inputs",
    prefix=f"{PREFIX}timeout/",
    retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1, timeout=0.5),
)
async def overrun(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Overruns its 0.5 s timeout on the first attempt only."""
    if _called("overrun") == 1:
        await asyncio.sleep(30)
    return {"size": await _size(event, ctx)}


@router.function(
    bucket="job-inputs",
    prefix=f"{PREFIX}flaky-store/",
    retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1),
)
async def reader(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Reads its object; the store in front of it fails the first reads."""
    return {"size": await _size(event, ctx)}


@router.function(
    bucket="job-inputs",
    prefix=f"{PREFIX}stubborn/",
    retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1),
)
async def stubborn(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """A transient-looking failure until the test says the bug is fixed."""
    _called("stubborn")
    if BROKEN["stubborn"]:
        raise ConnectionError("the downstream service is still down")
    return {"size": await _size(event, ctx)}


APP = App([router])


@dataclass
class Faulty:
    """A loopback HTTP proxy to MinIO that answers 500 to the first GETs of one key.

    MinIO stays real: every other request, and every GET after the budget is spent,
    is forwarded unchanged (the Host header too, so SigV4 signatures still verify).
    """

    upstream: str
    key: str
    failures: int
    failed: int = 0
    forwarded: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Fail the budgeted GETs; forward everything else to MinIO as it came."""
        hit = request.method == "GET" and request.path.endswith(self.key)
        if hit and self.failed < self.failures:
            self.failed += 1
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                b"<Message>injected by the test</Message></Error>"
            )
            return web.Response(status=500, body=body, content_type="application/xml")
        self.forwarded.append(f"{request.method} {request.path}")
        async with (
            ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=request.headers,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream,
        ):
            payload = await upstream.read()
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return web.Response(status=upstream.status, body=payload, headers=headers)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        # An Application (not a bare Server) answers ``Expect: 100-continue``,
        # which botocore sends with every PUT.
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            await runner.cleanup()


@pytest.fixture(scope="module")
async def settings() -> AsyncIterator[Settings]:
    s = make_settings()
    await require_rabbitmq(s)
    require_minio(s3_client(s))
    await init(APP, s)
    yield s
    await remove_rules(s, {"job-inputs"})
    await delete_queues(s, list(queue_arguments(s, APP)))


async def put(settings: Settings, key: str, body: bytes) -> None:
    s3 = s3_client(settings)
    await asyncio.to_thread(s3.put_object, Bucket="job-inputs", Key=key, Body=body)


async def entries_for(settings: Settings, function: str, key: str) -> list[Entry]:
    async with Broker.connect(settings) as broker:
        store = DeadLetters(broker, settings, APP)
        return [e for e in await store.entries() if e.function == function and e.key == key]


async def test_a_handler_past_its_timeout_is_retried_and_then_succeeds(settings: Settings) -> None:
    key = f"{PREFIX}timeout/data.bin"
    CALLS.pop("overrun", None)
    async with running(APP, settings) as seen:
        await put(settings, key, b"12345")
        result = await wait_for_object(
            s3_client(settings), "job-outputs", result_key("overrun", key), 60
        )
        await seen.until(lambda: ("overrun", key, "ok") in seen.outcomes)
    assert result["status"] == "ok"
    assert result["output"] == {"size": 5}
    assert result["attempts"] == 2
    (first,) = result["history"]
    assert first["error_type"] == "TimeoutError", first
    assert CALLS["overrun"] == 2


async def test_minio_5xx_is_retried_until_the_read_succeeds(settings: Settings) -> None:
    key = f"{PREFIX}flaky-store/data.bin"
    # botocore retries each call 3 times itself (``max_attempts`` counts retries,
    # not tries): 4 failures exhaust the first attempt, so only bucketfn's retry
    # tier can bring the second one.
    proxy = Faulty(upstream=settings.s3_endpoint, key=key, failures=4)
    async with proxy.serving() as endpoint:
        behind = settings.model_copy(update={"s3_endpoint": endpoint})
        async with running(APP, behind) as seen:
            await put(settings, key, b"1234567")
            result = await wait_for_object(
                s3_client(settings), "job-outputs", result_key("reader", key), 60
            )
            await seen.until(lambda: ("reader", key, "ok") in seen.outcomes)
    assert proxy.failed == 4
    assert result["status"] == "ok"
    assert result["output"] == {"size": 7}
    assert result["attempts"] == 2
    (first,) = result["history"]
    assert "InternalError" in first["message"], first


async def test_a_replay_whose_publish_fails_keeps_the_dead_letter(settings: Settings) -> None:
    key = f"{PREFIX}stubborn/kept.bin"
    BROKEN["stubborn"] = True
    async with running(APP, settings):
        await put(settings, key, b"abc")
        failed = await wait_for_object(
            s3_client(settings), "job-outputs", result_key("stubborn", key), 60
        )
    assert failed["status"] == "dead-lettered"
    (entry,) = await entries_for(settings, "stubborn", key)
    # The function's queue is gone (a half-applied deploy): the replay cannot be
    # confirmed, so the entry must still be in the dead-letter queue afterwards.
    queue = settings.queues.function("stubborn")
    await delete_queues(settings, [queue])
    try:
        async with Broker.connect(settings) as broker:
            with pytest.raises(BrokerError):
                await DeadLetters(broker, settings, APP).replay(select([entry.id]))
        assert [e.id for e in await entries_for(settings, "stubborn", key)] == [entry.id]
    finally:
        await init(APP, settings)
    # Once the queue is back, the same entry replays and the fixed function succeeds.
    BROKEN["stubborn"] = False
    try:
        async with running(APP, settings) as seen:
            async with Broker.connect(settings) as broker:
                report = await DeadLetters(broker, settings, APP).replay(select([entry.id]))
            assert report.replayed == [entry.id]
            await seen.until(lambda: ("stubborn", key, "ok") in seen.outcomes, timeout=60)
    finally:
        BROKEN["stubborn"] = True
    assert await entries_for(settings, "stubborn", key) == []


async def test_a_replay_gets_a_fresh_retry_budget(settings: Settings) -> None:
    key = f"{PREFIX}stubborn/budget.bin"
    BROKEN["stubborn"] = True
    s3 = s3_client(settings)
    async with running(APP, settings) as seen:
        await put(settings, key, b"abcd")
        await seen.until(lambda: ("stubborn", key, "dead-letter") in seen.outcomes, 60)
        (entry,) = await entries_for(settings, "stubborn", key)
        CALLS["stubborn"] = 0
        async with Broker.connect(settings) as broker:
            report = await DeadLetters(broker, settings, APP).replay(select([entry.id]))
        assert report.replayed == [entry.id]
        # Still broken: the replayed invocation gets all of its 2 attempts again
        # (not 1 left over from before), then is dead-lettered with its whole story.
        await seen.until(
            lambda: seen.outcomes.count(("stubborn", key, "dead-letter")) == 2, timeout=60
        )
    assert CALLS["stubborn"] == 2
    (again,) = await entries_for(settings, "stubborn", key)
    assert again.invocation is not None and again.invocation.replays == 1
    assert [a.attempt for a in again.invocation.history] == [1, 2, 1, 2]  # the whole story
    record = await wait_for_object(s3, "job-outputs", result_key("stubborn", key))
    assert record["status"] == "dead-lettered"
    assert record["attempts"] == 4  # two before the replay, two after
