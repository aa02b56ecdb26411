"""The feed on a real RabbitMQ: the observer publishes, ``watch`` shows, and leaves nothing behind.

The observer is driven directly (through the real worker in the harness), so
every note is known in advance; ``watch`` runs as a person runs it, in a
process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import aiormq
import orjson
import pytest
from pydantic import SecretStr

from runtime import App, Context, InputError, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.records import Invocation, dumps
from runtime.core.settings import Settings
from runtime.engine.feed import Batch, Feed
from runtime.ops.feed import follow
from runtime.testing import Harness
from tests.servers import (
    Relay,
    broker_address,
    delete_queues,
    deployment_env,
    make_settings,
    require_rabbitmq,
)

ROOT = Path(__file__).resolve().parents[2]
router = Router()


@router.function(bucket="job-inputs", prefix="feed/", name="feed_probe")
async def feed_probe(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.read(event)])
    if data == b"bad":
        raise InputError("bad bytes", where="byte 0")
    return {"n": len(data)}


APP = App([router])
ROUTE = router.routes[0]


@pytest.fixture
async def deployment() -> AsyncIterator[tuple[Settings, Broker]]:
    """A deployment's durable queues, with messages in them that a watcher must not touch."""
    settings = make_settings()
    await require_rabbitmq(settings)
    q = settings.queues
    try:
        async with Broker.connect(settings) as broker:
            await broker.declare(settings, APP)
            event = ObjectEvent(
                event_id="e", event_name="s3:ObjectCreated:Put", bucket="b", key="k"
            )
            for queue in (q.ingress, q.function("feed_probe"), q.dead_letter("feed_probe")):
                body = dumps(Invocation(function="feed_probe", event=event))
                await broker.publish(queue, body)
            yield settings, broker
    finally:
        await delete_queues(settings, list(queue_arguments(settings, APP)))
        with contextlib.suppress(Exception):
            conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
            async with conn:
                await (await conn.channel()).exchange_delete(settings.queues.feed)


async def depths(broker: Broker, settings: Settings) -> dict[str, int]:
    """Ready messages of every durable queue of the deployment."""
    out = {}
    for name in queue_arguments(settings, APP):
        async with broker.channel() as channel:
            out[name] = (await broker.existing(channel, name)).declaration_result.message_count or 0
    return out


async def queue_exists(broker: Broker, name: str) -> bool:
    async with broker.channel() as channel:
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        except aiormq.exceptions.ChannelLockedResource:
            return True  # exclusive to another connection: it exists
    return True


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)


async def test_notes_arrive_and_the_listener_leaves_nothing(
    deployment: tuple[Settings, Broker],
) -> None:
    settings, broker = deployment
    before = await depths(broker, settings)
    q = settings.queues
    assert [
        before[n] for n in (q.ingress, q.function("feed_probe"), q.dead_letter("feed_probe"))
    ] == [
        1,
        1,
        1,
    ]
    batches: list[Batch] = []
    queues: list[str] = []
    feed = Feed(settings, linger=0.01)
    h = Harness(observer=feed)
    h.storage.put_bytes("job-inputs", "feed/ok", b"good")
    h.storage.put_bytes("job-inputs", "feed/bad", b"bad")

    async with feed.publishing():
        following = asyncio.create_task(follow(settings, batches.append, on_link=queues.append))
        await until(lambda: bool(queues), "subscribing")
        (queue,) = queues
        assert await queue_exists(broker, queue)

        ok = h.event("job-inputs", "feed/ok")
        feed.dispatched(ok, ["feed_probe"])
        feed.unmatched(h.event("job-inputs", "feed/bad"))
        await h.deliver(ROUTE, ok)
        await h.deliver(ROUTE, h.event("job-inputs", "feed/bad"))
        feed.rejected(None, "not JSON: garbage", "letter-1")

        def notes() -> list[str]:
            return [
                n.kind if n.kind != "finished" else str(n.outcome) for b in batches for n in b.notes
            ]

        await until(lambda: len(notes()) == 5, "five notes")
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following

    assert notes() == ["routed", "unmatched", "ok", "dead-letter", "rejected"]
    routed, _, done, failed, rejected = [n for b in batches for n in b.notes]
    assert (routed.functions, routed.bucket, routed.key) == (
        ("feed_probe",),
        "job-inputs",
        "feed/ok",
    )
    assert (done.function, done.key, done.attempt, done.error) == ("feed_probe", "feed/ok", 1, None)
    assert done.seconds is not None and done.seconds > 0
    assert failed.error is not None and failed.error == "runtime.InputError: bad bytes (at byte 0)"
    assert failed.letter_id is not None
    assert (rejected.function, rejected.letter_id) == (None, "letter-1")
    assert {b.source for b in batches} == {feed.source}
    assert (feed.published, feed.dropped) == (5, 0)

    # The listener's queue is gone, and no durable queue gained or lost a message.
    assert not await queue_exists(broker, queue)
    assert await depths(broker, settings) == before


async def test_drops_are_counted_and_batches_are_bounded(
    deployment: tuple[Settings, Broker],
) -> None:
    settings, _ = deployment
    feed = Feed(settings, capacity=1_200, batch=500)
    event = ObjectEvent(event_id="e", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
    for _ in range(1_203):  # the publisher is not even running: a hook never waits for it
        feed.unmatched(event)
    assert (feed.pending, feed.dropped) == (1_200, 3)

    batches: list[Batch] = []
    linked = asyncio.Event()
    following = asyncio.create_task(
        follow(settings, batches.append, on_link=lambda _: linked.set())
    )
    await asyncio.wait_for(linked.wait(), 15)
    async with feed.publishing():
        await until(lambda: sum(len(b.notes) for b in batches) == 1_200, "1,200 notes")
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following
    assert [len(b.notes) for b in batches] == [500, 500, 200]
    assert [b.dropped for b in batches] == [3, 0, 0]  # told once, with the first batch after


@contextlib.contextmanager
def watching(settings: Settings, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``bucketfn watch`` in a process of its own, killed if a test leaves it running."""
    env = deployment_env(settings)
    with subprocess.Popen(
        [sys.executable, "-m", "runtime", "watch", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


async def subscribed(proc: subprocess.Popen[bytes]) -> str:
    """The queue name ``watch`` reports once it is subscribed (its first line on stderr)."""
    assert proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30)
    assert b"watching" in line, line
    return line.split(b"(queue ")[1].split(b")")[0].decode()


async def publish_until_read(
    feed: Feed, proc: subprocess.Popen[bytes], event: ObjectEvent
) -> bytes:
    """Keep noting until ``watch`` prints a line (the subscription may still be settling)."""
    assert proc.stdout is not None
    reading = asyncio.ensure_future(asyncio.to_thread(proc.stdout.readline))
    while not reading.done():
        feed.unmatched(event)
        await asyncio.wait({reading}, timeout=0.2)
    return reading.result()


async def test_watch_command_ends_on_ctrl_c_and_its_queue_goes(
    deployment: tuple[Settings, Broker],
) -> None:
    settings, broker = deployment
    before = await depths(broker, settings)
    with watching(settings, "--json") as proc:
        queue = await subscribed(proc)
        assert await queue_exists(broker, queue)
        feed = Feed(settings, linger=0.01)
        event = ObjectEvent(event_id="w", event_name="s3:ObjectCreated:Put", bucket="b", key="a/b")
        async with feed.publishing():
            line = await publish_until_read(feed, proc, event)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
        assert proc.stderr is not None
        rest = proc.stderr.read().decode()
    note = orjson.loads(line)
    assert (note["kind"], note["key"], note["source"]) == ("unmatched", "a/b", feed.source)
    assert code == 0, rest
    assert "Traceback" not in rest and "watched" in rest
    assert not await queue_exists(broker, queue)
    assert await depths(broker, settings) == before


async def test_watch_survives_a_closed_pipe(deployment: tuple[Settings, Broker]) -> None:
    settings, broker = deployment
    with watching(settings) as proc:  # plain lines: the `| head -1` case
        queue = await subscribed(proc)
        feed = Feed(settings, linger=0.01)
        event = ObjectEvent(event_id="p", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
        async with feed.publishing():
            first = await publish_until_read(feed, proc, event)
            assert proc.stdout is not None
            proc.stdout.close()  # the reader goes away
            deadline = time.monotonic() + 30
            while proc.poll() is None:  # until watch writes into the closed pipe and ends
                assert time.monotonic() < deadline, "watch did not end on a closed pipe"
                feed.unmatched(event)
                await asyncio.sleep(0.05)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert b"unmatched" in first and b"b/k" in first
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    # Exclusive: the broker removes it with the connection; wait for that, positively.
    deadline = time.monotonic() + 15
    while await queue_exists(broker, queue):
        assert time.monotonic() < deadline, "the queue outlived watch"
        await asyncio.sleep(0.05)


async def test_follow_comes_back_after_the_connection_drops(
    deployment: tuple[Settings, Broker],
) -> None:
    settings, broker = deployment
    relay = Relay(broker_address(settings))
    await relay.start()
    via = settings.model_copy(
        update={"amqp_url": SecretStr(f"amqp://guest:guest@127.0.0.1:{relay.port}/")}
    )
    links: list[str] = []
    losses: list[str] = []
    batches: list[Batch] = []
    following = asyncio.create_task(
        follow(via, batches.append, on_link=links.append, on_lost=losses.append)
    )
    try:
        await until(lambda: len(links) == 1, "subscribing")
        await relay.cut()
        await until(lambda: bool(losses), "noticing the loss")
        await relay.start()  # the broker is back, on the same address
        await until(lambda: len(links) == 2, "subscribing again")
        feed = Feed(settings, linger=0.01)
        event = ObjectEvent(event_id="r", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
        async with feed.publishing():
            feed.unmatched(event)
            await until(lambda: bool(batches), "a note after the reconnect")
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await relay.cut()
    first, second = links
    assert first != second
    deadline = time.monotonic() + 15
    while await queue_exists(broker, first):  # exclusive: gone with its connection
        assert time.monotonic() < deadline, "the first queue outlived its connection"
        await asyncio.sleep(0.05)
    assert not await queue_exists(broker, second)


async def test_a_feed_nobody_watches_gets_nothing_returned(
    deployment: tuple[Settings, Broker],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aio-pika publishes `mandatory` unless told otherwise: every note routed nowhere
    # came back as a Basic.Return, which aiormq logs as an unhandled message (on a
    # channel without confirms), one line per tick in every runtime's log.
    settings, _ = deployment
    from runtime.engine import feed as feed_module

    channels: list[aio_pika.abc.AbstractChannel] = []
    declare = feed_module.declare_exchange

    async def spying(
        channel: aio_pika.abc.AbstractChannel, name: str
    ) -> aio_pika.abc.AbstractExchange:
        channels.append(channel)
        return await declare(channel, name)

    monkeypatch.setattr(feed_module, "declare_exchange", spying)
    feed = Feed(settings, linger=0.01)
    event = ObjectEvent(event_id="n", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
    with caplog.at_level(logging.DEBUG, logger="aiormq"):
        async with feed.publishing():
            feed.unmatched(event)
            await until(lambda: feed.published >= 1, "the note published")
            # The broker answers a channel's methods in order: a return for the
            # note would have arrived before this reply.
            await channels[0].declare_exchange(settings.queues.feed, passive=True)
    assert not [r for r in caplog.records if "Basic.Return" in r.getMessage()]
