"""One look at a deployment (``bucketfn status``): servers, queues, dead letters, in flight.

Nothing is consumed and nothing is reordered:

- Depth and consumers come from passive declares, as ``/metrics`` reads them
  (:mod:`runtime.http.queues`): any AMQP client may ask, no management plugin
  or its credentials needed. Depth is the messages *ready*; those delivered
  and not yet acked are not in it.
- The oldest dead letter and the last error are read from the dead-letter
  queue itself. RabbitMQ's management API cannot answer either: its
  ``head_message_timestamp`` needs a timestamp on every message and is not
  reported for quorum queues at all (checked on 3.10), and it never shows a
  body. Peeking at the head alone is not safe either: a quorum queue delivers
  messages given back before (``bucketfn dlq ls`` gives back every entry)
  ahead of the rest, in the order they came back, so taking the first k of
  them and giving those back puts them *behind* the others (measured on 3.10:
  A B C, read A B, give back → C A B). Only taking every entry and giving all
  back at once, in order, with one ``basic.nack(multiple, requeue)``, leaves
  the order as it was — which the integration test checks after a listing.
  So a queue of at most ``read`` entries is read whole (exact oldest and last
  error); a longer one is not read at all, and the report says so. On
  RabbitMQ 4.3 a nack is not counted as a delivery. Dead-letter queues have
  no consumers; for the milliseconds of the read a concurrent ``bucketfn dlq``
  command would not see those entries, exactly as with two ``dlq ls`` at once.
  (Entries dead-lettered while the read runs land behind; if they push the
  queue past ``read`` mid-read, what was read goes behind them — the one
  reordering left, needing a failure storm during a status.)
- In flight is what the runtime at ``BUCKETFN_METRICS_ADDRESS`` reports
  (``bucketfn_inflight_invocations``): one process's handlers running now.
  The broker does not tell passive declares about unacked messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from prometheus_client.parser import text_string_to_metric_families

from runtime.adapters.amqp import Broker, mapped
from runtime.adapters.notify import target_stats
from runtime.adapters.s3 import S3Storage
from runtime.core.errors import BrokerError, StorageError
from runtime.core.names import target_id
from runtime.core.records import now
from runtime.core.retry import tiers_for
from runtime.engine.health import PROBE_PREFIX
from runtime.ops.deadletters import Entry

if TYPE_CHECKING:
    from runtime.app.router import App
    from runtime.core.settings import Settings

READ = 1_000  # entries: reading this many whole took ~1 s on loopback (basic.get is a round trip)
WITHIN = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """One server as status sees it; ``address`` never carries credentials."""

    name: str
    address: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Depth:
    """A queue's ready messages and consumers (a passive declare's answer)."""

    messages: int
    consumers: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Letters:
    """A dead-letter queue: its depth and, when it was read whole, its oldest and newest entry."""

    queue: str
    count: int
    read: bool = False  # False: empty, or longer than status reads
    oldest: datetime | None = None
    last: Entry | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One consumer of the deployment: the dispatcher (``function`` None) or a function."""

    function: str | None
    queue: str
    depth: Depth | None = None
    retrying: int | None = None  # waiting in its delay tiers
    inflight: int | None = None
    letters: Letters | None = None
    missing: tuple[str, ...] = ()  # its queues that do not exist (not initialised)
    known: bool = True  # False: RabbitMQ did not answer, so nothing of its queues is known


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything ``status`` shows, as of ``at``."""

    at: datetime
    servers: tuple[Server, ...]
    rows: tuple[Row, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """RabbitMQ and S3 answer and every queue exists (the runtime's endpoint is advisory)."""
        needed = all(s.ok for s in self.servers if s.name in ("rabbitmq", "s3"))
        return needed and not any(r.missing for r in self.rows)

    def summary(self) -> dict[str, Any]:
        """The report as plain data (``--json``)."""
        return {
            "at": self.at.isoformat(),
            "ok": self.ok,
            "servers": [
                {"name": s.name, "address": s.address, "ok": s.ok, "detail": s.detail}
                for s in self.servers
            ],
            "dispatcher": next((self._row(r) for r in self.rows if r.function is None), None),
            "functions": [self._row(r) for r in self.rows if r.function is not None],
        }

    def _row(self, r: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queue": r.queue,
            "messages": r.depth.messages if r.depth else None,
            "consumers": r.depth.consumers if r.depth else None,
            "missing": list(r.missing),
            "known": r.known,
        }
        if r.function is not None:
            out = {"function": r.function, **out, "retrying": r.retrying, "in_flight": r.inflight}
        dl = r.letters
        out["dead_letters"] = dl and {
            "queue": dl.queue,
            "count": dl.count,
            "oldest_at": dl.oldest.isoformat() if dl.oldest else None,
            "oldest_age_seconds": age(self.at, dl.oldest),
            "read": dl.read,
            "last_error": dl.last and dl.last.summary(),
        }
        return out


def age(at: datetime, then: datetime | None) -> float | None:
    """Seconds from ``then`` to ``at`` (never negative: clocks of two hosts differ)."""
    return None if then is None else round(max((at - then).total_seconds(), 0.0), 3)


async def gather(
    settings: Settings, app: App, *, read: int = READ, within: float = WITHIN
) -> Report:
    """Ask RabbitMQ, S3 and the runtime's endpoint at once; each answers or says why not."""
    (rabbit, rows), s3, (runtime, inflight), events = await asyncio.gather(
        _broker(settings, app, read, within),
        _storage(settings, within),
        _runtime(settings, within),
        _notify(settings, within),
    )
    rows = tuple(
        r if r.function is None else _with_inflight(r, inflight.get(r.function)) for r in rows
    )
    return Report(at=now(), servers=(rabbit, s3, runtime, events), rows=rows)


async def _notify(settings: Settings, within: float) -> Server:
    """MinIO's counters of the events its target failed (advisory, like the runtime's row)."""
    name, address = "notify", f"{settings.s3_endpoint} ({target_id(settings.minio_target_arn)})"
    try:
        stats = await target_stats(settings, within)
    except StorageError as exc:
        return Server(name=name, address=address, ok=False, detail=f"unknown: {exc}")
    if stats is None:
        return Server(name=name, address=address, ok=False, detail="MinIO has no such target")
    detail = (
        f"sent {stats.total}, failed {stats.failed}, skipped {stats.skipped}, "
        f"queued {stats.queued} since MinIO started"
    )
    if stats.lost:
        detail += f": {stats.lost} events not delivered (the sweep finds their objects)"
    return Server(name=name, address=address, ok=not stats.lost, detail=detail)


def _with_inflight(row: Row, inflight: int | None) -> Row:
    return Row(
        function=row.function,
        queue=row.queue,
        depth=row.depth,
        retrying=row.retrying,
        inflight=inflight,
        letters=row.letters,
        missing=row.missing,
        known=row.known,
    )


def amqp_address(settings: Settings) -> str:
    """``host:port`` of the AMQP URL, without its credentials."""
    url = urlsplit(settings.amqp_url.get_secret_value())
    port = url.port or (5671 if url.scheme == "amqps" else 5672)
    return f"{url.hostname}:{port}"


async def _broker(
    settings: Settings, app: App, read: int, within: float
) -> tuple[Server, tuple[Row, ...]]:
    address = amqp_address(settings)
    q = settings.queues
    # Fail fast: status is for a person waiting, not a runtime that must outlast a restart.
    quick = settings.model_copy(update={"connect_timeout": 0.0})
    try:
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(within):
                broker = await stack.enter_async_context(Broker.connect(quick))
            rows = [await _row(broker, None, q.ingress, q.ingress_dlq, (), read)]
            for route in app.routes:
                tiers = tuple(q.retry(route.name, t) for t in tiers_for(route.retry))
                work, dlq = q.function(route.name), q.dead_letter(route.name)
                rows.append(await _row(broker, route.name, work, dlq, tiers, read))
    except (TimeoutError, BrokerError) as exc:
        detail = str(exc) if isinstance(exc, BrokerError) else f"no answer within {within:g} s"
        unknown = [Row(function=None, queue=q.ingress, known=False)]
        unknown += [Row(function=r.name, queue=q.function(r.name), known=False) for r in app.routes]
        return Server(name="rabbitmq", address=address, ok=False, detail=detail), tuple(unknown)
    return Server(name="rabbitmq", address=address, ok=True, detail="ok"), tuple(rows)


async def _row(
    broker: Broker,
    function: str | None,
    work: str,
    dlq: str,
    tiers: tuple[str, ...],
    read: int,
) -> Row:
    depths = {name: await _depth(broker, name) for name in (work, dlq, *tiers)}
    missing = tuple(name for name, d in depths.items() if d is None)
    waiting = [d.messages for name in tiers if (d := depths[name]) is not None]
    dead = depths[dlq]
    letters = (
        None if dead is None else await read_letters(broker, dlq, function, dead.messages, read)
    )
    return Row(
        function=function,
        queue=work,
        depth=depths[work],
        retrying=sum(waiting) if waiting else None,
        letters=letters,
        missing=missing,
    )


async def _depth(broker: Broker, name: str) -> Depth | None:
    # A passive declare of a missing queue closes its channel: one channel each.
    async with broker.channel() as channel:
        try:
            queue = await broker.existing(channel, name)
        except BrokerError:
            if broker.lost.is_set():
                raise
            return None
    declared = queue.declaration_result
    return Depth(messages=declared.message_count or 0, consumers=declared.consumer_count or 0)


async def read_letters(
    broker: Broker, name: str, function: str | None, count: int, read: int
) -> Letters:
    """Take every entry, then give them all back in order (see the module's docstring)."""
    if count == 0 or count > read:
        return Letters(queue=name, count=count)
    entries: list[Entry] = []
    async with broker.channel() as channel:
        queue = await broker.existing(channel, name)
        async with mapped(f"reading {name!r}"):
            held = None
            while len(entries) < read:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                held = message
                entries.append(Entry.of(name, function, message))
            if held is not None:
                await held.nack(multiple=True, requeue=True)
    times = [e.at for e in entries if e.at is not None]
    # The newest by its own time; the queue's order when no entry says when it came.
    newest = max(times, default=None)
    last = next((e for e in entries if e.at == newest), entries[-1] if entries else None)
    return Letters(
        queue=name,
        count=len(entries),
        read=bool(entries),
        oldest=min(times, default=None),
        last=last,
    )


async def _storage(settings: Settings, within: float) -> Server:
    """List an empty prefix of the output bucket, as readiness does (a HEAD hides a 404)."""
    address = settings.s3_endpoint
    try:
        async with asyncio.timeout(within), S3Storage.connect(settings) as storage:
            async for _ in storage.list(settings.output_bucket, PROBE_PREFIX):
                pass
    except TimeoutError:
        return Server(name="s3", address=address, ok=False, detail=f"no answer within {within:g} s")
    except StorageError as exc:
        return Server(name="s3", address=address, ok=False, detail=str(exc))
    return Server(name="s3", address=address, ok=True, detail="ok")


async def _runtime(settings: Settings, within: float) -> tuple[Server, dict[str, int]]:
    """The runtime's ``/readyz`` and its in-flight gauge, when its endpoint answers."""
    address = settings.metrics_address
    host, port = settings.metrics_bind
    if port == 0:
        return Server(
            name="runtime", address=address, ok=False, detail="port 0: no fixed address to ask"
        ), {}
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        code, ready = await asyncio.to_thread(_get, base + "/readyz", within)
        _, scraped = await asyncio.to_thread(_get, base + "/metrics", within)
    except OSError as exc:
        detail = f"unreachable: {getattr(exc, 'reason', exc)}"
        return Server(name="runtime", address=address, ok=False, detail=detail), {}
    if code == 200:
        detail = "ready"
    else:
        try:
            missing = orjson.loads(ready).get("missing") or []
        except (orjson.JSONDecodeError, AttributeError):
            missing = []
        detail = "not ready: " + ("; ".join(map(str, missing)) or f"HTTP {code}")
    return Server(name="runtime", address=address, ok=code == 200, detail=detail), inflight(
        scraped.decode(errors="replace")
    )


def inflight(exposition: str) -> dict[str, int]:
    """``bucketfn_inflight_invocations`` by function, from a ``/metrics`` page."""
    out: dict[str, int] = {}
    with contextlib.suppress(ValueError):  # a page that is not the exposition format
        for family in text_string_to_metric_families(exposition):
            if family.name != "bucketfn_inflight_invocations":
                continue
            for sample in family.samples:
                function = sample.labels.get("function")
                if function is not None:
                    out[function] = out.get(function, 0) + int(sample.value)
    return out


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _get(url: str, within: float) -> tuple[int, bytes]:
    """GET ``url``: (status, body), an HTTP error status included; OSError if unreachable."""
    try:
        with _DIRECT.open(url, timeout=within) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
