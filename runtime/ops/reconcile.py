"""Which objects of a route have no result for their current content, and enqueue those.

Notifications are the fast path, never the only one: an event can be lost (a
broker restart in the fast profile, MinIO's queue limit, a rule added after
the upload). This lists what a route covers beside the function's result
records and finds what was missed; the sweep and ``bucketfn backfill`` both
use it.

Both listings come back sorted, but not in the same order: a result key is
``<function>/<safe key>/result.json``, and appending ``/result.json`` (or
escaping a segment) reorders keys such as ``a`` and ``a-b``. So sources are
read a page at a time, and the result records of one page are read with one
ranged listing from the smallest to the largest of its result keys. Memory is
bounded by the page, never by the bucket.

An object counts as done when its result record was written after the
object's own last write (a record for an older write predates the newer write),
or, where the times do not settle it, when the record names the object's
current revision.
Objects younger than ``grace`` are left to their own events, which are most
likely in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runtime.core import names
from runtime.core.events import listed
from runtime.core.names import Header, Meta
from runtime.core.records import Invocation, dumps
from runtime.engine.seen import Seen

if TYPE_CHECKING:
    from runtime.app.router import Route
    from runtime.core.events import ObjectEvent
    from runtime.core.seams import ObjectInfo, Publisher, Storage

PAGE = 1000  # source objects merged at once: bounds memory and one ranged result listing
HEADS = 32  # concurrent HEADs when enqueueing (each candidate's metadata and version)


@dataclass(slots=True, kw_only=True)
class Page:
    """One page of a route's objects, sorted into what needs doing."""

    listed: int = 0
    done: int = 0
    young: int = 0
    pending: list[ObjectInfo] = field(default_factory=list)
    last_key: str = ""


@dataclass(slots=True, kw_only=True)
class Tally:
    """What a pass did, for the log, the progress bar and ``--json``."""

    listed: int = 0
    done: int = 0
    young: int = 0
    enqueued: int = 0
    skipped: int = 0  # gone since listing, or written by the function itself
    last_key: str = ""
    complete: bool = False

    def add(self, page: Page) -> None:
        """Count a page's verdicts."""
        self.listed += page.listed
        self.done += page.done
        self.young += page.young
        self.last_key = page.last_key or self.last_key


class Reconciler:
    """Finds a route's unprocessed objects and sends them through the function's queue."""

    def __init__(
        self,
        storage: Storage,
        publisher: Publisher,
        queues: names.Queues,
        output_bucket: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.publisher = publisher
        self.queues = queues
        self.output_bucket = output_bucket
        self.clock = clock

    async def pages(
        self,
        route: Route,
        *,
        prefix: str | None = None,
        start_after: str = "",
        grace: float = 0.0,
        page: int = PAGE,
    ) -> AsyncIterator[Page]:
        """The route's objects after ``start_after`` (under ``prefix``, within the route's),
        a page at a time, each sorted into done, young and pending."""
        scope = prefix if prefix and prefix.startswith(route.prefix) else route.prefix
        if not start_after.startswith(scope):
            # A checkpoint left by a run on another prefix (one per function), or from
            # before the route's prefix changed: continuing after it could skip it all.
            start_after = ""
        cutoff = self.clock() - timedelta(seconds=grace)
        batch: list[ObjectInfo] = []
        last = start_after
        async for info in self.storage.list(route.bucket, scope, start_after=start_after):
            last = info.key
            if route.suffixes and not info.key.endswith(route.suffixes):
                continue
            batch.append(info)
            if len(batch) >= page:
                yield await self._sort(route, batch, cutoff, last)
                batch = []
        yield await self._sort(route, batch, cutoff, last)

    async def _sort(
        self, route: Route, batch: list[ObjectInfo], cutoff: datetime, last: str
    ) -> Page:
        out = Page(listed=len(batch), last_key=last)
        if not batch:
            return out
        written = await self._records(route, [names.result_key(route.name, o.key) for o in batch])
        judged = await self._judged(route, batch, written)
        for info in batch:
            record = written.get(names.result_key(route.name, info.key))
            if record is not None and judged.get(info.key, True):
                out.done += 1
            elif info.last_modified is not None and info.last_modified > cutoff:
                out.young += 1
            else:
                out.pending.append(info)
        return out

    async def _judged(
        self, route: Route, batch: list[ObjectInfo], written: dict[str, datetime | None]
    ) -> dict[str, bool]:
        """Decide, by revision, the objects whose record's time does not settle it.

        A record written after its object's Last-Modified is of its current
        content (each is written after its revision is). Otherwise the times say
        nothing for sure: a tie at a store's precision (whole seconds on
        SeaweedFS), or an object written again with the same content after its
        record — a promotion the ledger settled once more, a copy onto itself.
        Counted as not done, the latter was enqueued on every pass for ever, and
        skipped by the worker as a duplicate every time. For those, HEAD the
        record and the object and compare the revision the record was written
        for (its metadata) with the object's current one (version id, else
        etag): one HEAD when the record names the listed etag, else two.
        """
        limit = asyncio.Semaphore(HEADS)

        async def one(info: ObjectInfo) -> tuple[str, bool]:
            async with limit:
                rec = await self.storage.head(
                    self.output_bucket, names.result_key(route.name, info.key)
                )
                wrote = Seen.of(rec.metadata or {}).revision if rec is not None else ""
                if wrote and wrote == info.etag:
                    return info.key, True  # unversioned: the listing's etag is the revision
                current = await self.storage.head(info.bucket, info.key)
            if current is None:
                return info.key, True  # a deleted object needs nothing
            return info.key, bool(wrote) and wrote == (current.version_id or current.etag)

        doubtful = [
            info
            for info in batch
            if (key := names.result_key(route.name, info.key)) in written
            and not _after(written[key], info.last_modified)
        ]
        return dict(await asyncio.gather(*(one(info) for info in doubtful)))

    async def _records(self, route: Route, wanted: list[str]) -> dict[str, datetime | None]:
        """Last-Modified of the wanted result records that exist, by one ranged listing."""
        ordered = sorted(wanted, key=str.encode)
        lo, hi = ordered[0].encode(), ordered[-1].encode()
        keep = set(wanted)
        found: dict[str, datetime | None] = {}
        # Just before the smallest: listing starts *after* start_after.
        before = ordered[0][:-1]
        async for info in self.storage.list(
            self.output_bucket, f"{route.name}/", start_after=before
        ):
            key = info.key.encode()
            if key > hi:
                break
            if key >= lo and info.key in keep:
                found[info.key] = info.last_modified
        return found

    async def enqueue(self, route: Route, pending: list[ObjectInfo]) -> list[ObjectEvent]:
        """Publish an invocation for each pending object; returns the events enqueued.

        Each is HEADed first: the listing has no metadata, and the loop guard
        (an object the function wrote itself never runs it again) needs it.
        """
        limit = asyncio.Semaphore(HEADS)

        async def one(info: ObjectInfo) -> ObjectEvent | None:
            async with limit:
                current = await self.storage.head(info.bucket, info.key)
                if current is None:
                    return None  # deleted since it was listed
                event = listed(current)
                if event.metadata.get(Meta.FUNCTION) == route.name:
                    return None
                inv = Invocation(function=route.name, event=event)
                await self.publisher.publish(
                    self.queues.function(route.name),
                    dumps(inv),
                    headers={Header.EVENT_ID: event.event_id, Header.KIND: "listing"},
                )
                return event

        sent = await asyncio.gather(*(one(info) for info in pending))
        return [event for event in sent if event is not None]


def _after(record: datetime | None, source: datetime | None) -> bool:
    # Without both times there is no telling: a record exists, trust it (the
    # worker's own checks refuse a stale event anyway).
    if record is None or source is None:
        return True
    return record > source
