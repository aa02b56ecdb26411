"""The reconciliation sweep: every ``sweep_interval`` seconds, heal what notifications missed.

One sweeper per deployment, however many runtime processes run: each process
consumes the single-active-consumer queue ``<prefix>.sweep``, which holds one
token. Only the active consumer receives it, so only it sweeps; if it dies, the
broker hands the token (unacked, so returned) to the next consumer. The token
is held for one interval and one pass, then republished and acked, which keeps
it under RabbitMQ's consumer timeout (30 min by default) and lets extra tokens
(two processes starting at once may each add one) die out: a token is only
republished when none waits in the queue.

Each pass covers at most ``sweep_batch`` objects per route and remembers where
it stopped (a checkpoint object in the output bucket), so a huge bucket is
covered over several intervals instead of in one long listing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from runtime.adapters.amqp import Broker, mapped
from runtime.adapters.s3 import S3Storage
from runtime.core.errors import BrokerError, StorageError
from runtime.core.records import now
from runtime.core.retry import delays
from runtime.ops.reconcile import PAGE, Reconciler, Tally

if TYPE_CHECKING:
    from runtime.app.router import App, Route
    from runtime.core.seams import Storage
    from runtime.core.settings import Settings
    from runtime.engine.observer import Observer

log = structlog.get_logger("bucketfn.sweep")

TOKEN = b'{"token": "sweep"}'


class Checkpoints:
    """Where each route's sweep (or backfill) got to, kept as small objects in the output bucket."""

    def __init__(self, storage: Storage, settings: Settings, kind: str = "sweep") -> None:
        self.storage = storage
        self.bucket = settings.output_bucket
        self.queues = settings.queues
        self.kind = kind

    async def get(self, route: Route) -> str:
        """The key to continue after ('' to start from the beginning)."""
        key = self.queues.checkpoint(route.name, self.kind)
        if await self.storage.head(self.bucket, key) is None:
            return ""
        body = b"".join([c async for c in self.storage.stream(self.bucket, key)])
        doc = orjson.loads(body)
        after = doc.get("start_after", "") if isinstance(doc, dict) else ""
        return after if isinstance(after, str) else ""

    async def put(self, route: Route, start_after: str) -> None:
        """Remember ``start_after`` ('' once the route was covered to its end)."""
        body = orjson.dumps({"start_after": start_after, "at": now().isoformat()})
        await self.storage.put(
            self.bucket,
            self.queues.checkpoint(route.name, self.kind),
            body,
            content_type="application/json",
        )


async def sweep_once(
    app: App,
    settings: Settings,
    storage: Storage,
    reconciler: Reconciler,
    observer: Observer | None = None,
) -> dict[str, Tally]:
    """One pass over every route, from each one's checkpoint; returns what it did per route."""
    marks = Checkpoints(storage, settings)
    tallies: dict[str, Tally] = {}
    for route in app.routes:
        tally = Tally()
        start = await marks.get(route)
        tally.complete = True
        async for page in reconciler.pages(
            route,
            start_after=start,
            grace=settings.sweep_grace,
            page=min(PAGE, settings.sweep_batch),
        ):
            tally.add(page)
            sent = await reconciler.enqueue(route, page.pending)
            tally.enqueued += len(sent)
            tally.skipped += len(page.pending) - len(sent)
            for event in sent:
                when = event.event_time
                age = (reconciler.clock() - when).total_seconds() if when else None
                log.info(
                    "healed: enqueued an object no event had run",
                    function=route.name,
                    bucket=event.bucket,
                    key=event.key,
                    age_s=round(age, 1) if age is not None else None,
                )
                if observer is not None:
                    observer.healed(route.name, event, age)
            if tally.listed >= settings.sweep_batch:
                tally.complete = False
                break
        await marks.put(route, "" if tally.complete else tally.last_key)
        tallies[route.name] = tally
    return tallies


async def sweeping(
    app: App, settings: Settings, stop: asyncio.Event, *, observer: Observer | None = None
) -> None:
    """Take part in the sweep until ``stop``: sweep while this process holds the token.

    The sweep runs on a thread of its own, with its own event loop, S3 client and
    broker connection. Its listings are parsed in Python (botocore's XML parser:
    about 150 ms of CPU per 1,000 keys, measured), and on the runtime's loop each
    page stalled every invocation in flight: a pass over 2,000 objects during
    50 events/s put p99 at 0.5-0.7 s. On a thread, the interpreter switches
    between the two every few milliseconds instead. ``observer`` must be thread-safe
    (the metrics are).
    """
    if settings.sweep_interval <= 0:
        return
    own = asyncio.new_event_loop()
    halt = asyncio.Event()  # bound to ``own`` on first use, set from here thread-safely
    finished: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            own.run_until_complete(_sweeping(app, settings, halt, observer))
            finished.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's loop below
            finished.set_exception(exc)
        finally:
            own.close()

    threading.Thread(target=run, name="bucketfn-sweep", daemon=True).start()
    ended = asyncio.wrap_future(finished)
    stopping = asyncio.ensure_future(stop.wait())
    either: set[asyncio.Future[Any]] = {ended, stopping}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        with contextlib.suppress(RuntimeError):  # the thread's loop has ended already
            own.call_soon_threadsafe(halt.set)
        await asyncio.shield(ended)


async def _sweeping(
    app: App, settings: Settings, stop: asyncio.Event, observer: Observer | None
) -> None:
    """The sweep's own loop: join, hold the token while this process has it, until ``stop``."""
    async with S3Storage.connect(settings) as storage:
        backoff = delays()
        while not stop.is_set():
            try:
                async with Broker.connect(settings) as broker:
                    backoff = delays()
                    await _hold(app, settings, storage, broker, stop, observer)
                    return
            except (BrokerError, StorageError) as exc:
                log.warning("sweep interrupted; rejoining", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next(backoff))


async def _hold(
    app: App,
    settings: Settings,
    storage: S3Storage,
    broker: Broker,
    stop: asyncio.Event,
    observer: Observer | None,
) -> None:
    """Wait for the token; with it, wait an interval, sweep, pass it on; until ``stop``."""
    await broker.declare(settings, app)
    name = settings.queues.sweep
    reconciler = Reconciler(storage, broker, settings.queues, settings.output_bucket)
    async with broker.channel() as channel:
        async with mapped(f"joining {name!r}"):
            await channel.set_qos(prefetch_count=1)
            queue = await channel.declare_queue(name, passive=True)
            joined = queue.declaration_result
            if joined.message_count == 0 and joined.consumer_count == 0:
                await broker.publish(name, TOKEN)  # the first process brings the token

        async def hold() -> None:
            async with mapped(f"holding {name!r}"), queue.iterator() as tokens:
                async for token in tokens:
                    # This process is the sweeper now. The interval first, so a
                    # restart loop cannot sweep back to back.
                    await asyncio.sleep(settings.sweep_interval)
                    _report(await sweep_once(app, settings, storage, reconciler, observer))
                    waiting = await channel.declare_queue(name, passive=True)
                    if waiting.declaration_result.message_count == 0:
                        await broker.publish(name, TOKEN)
                    await token.ack()

        holding = asyncio.create_task(hold())
        stopping = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(broker.lost.wait())
        try:
            await asyncio.wait({holding, stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (holding, stopping, lost):
                task.cancel()
            # A token held unacked goes back when the channel closes: the next sweeper's.
            await asyncio.gather(holding, stopping, lost, return_exceptions=True)
        if holding.done() and not holding.cancelled() and holding.exception() is not None:
            raise holding.exception()  # type: ignore[misc]
        if lost.done() and not stop.is_set():
            raise BrokerError("connection to RabbitMQ lost")


def _report(tallies: dict[str, Tally]) -> None:
    for function, t in tallies.items():
        log.info(
            "sweep pass",
            function=function,
            listed=t.listed,
            done=t.done,
            young=t.young,
            enqueued=t.enqueued,
            skipped=t.skipped,
            complete=t.complete,
        )
