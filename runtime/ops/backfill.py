"""``bucketfn backfill``: run functions on objects that already exist.

The same merge as the sweep (:mod:`runtime.ops.reconcile`), over whole routes,
with no grace window: every object that matches a route and has no result for
its current content is enqueued on the function's queue, so retries, dead
letters and replay apply as to any event. Memory is bounded by one page.

It checkpoints after every page (an object in the output bucket), so an
interrupted backfill continues where it stopped instead of enqueuing the same
objects again; a finished one clears its checkpoint, and a rerun then finds
every object done (once the workers have written their results).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.ops.reconcile import Reconciler, Tally
from runtime.ops.sweep import Checkpoints

if TYPE_CHECKING:
    from runtime.app.router import Route
    from runtime.core.seams import Storage
    from runtime.core.settings import Settings

Progress = Callable[[str, Tally], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which routes and objects a backfill covers; empty fields cover everything."""

    function: str | None = None
    bucket: str | None = None
    prefix: str | None = None

    def covers(self, route: Route) -> bool:
        """Whether ``route`` is in scope (a prefix must lie inside or contain its own)."""
        if self.function and route.name != self.function:
            return False
        if self.bucket and route.bucket != self.bucket:
            return False
        return not self.prefix or (
            self.prefix.startswith(route.prefix) or route.prefix.startswith(self.prefix)
        )


class _Pace:
    """At most ``rate`` enqueues per second (0: as fast as the broker confirms)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    async def after(self, sent: int) -> None:
        self.sent += sent
        if self.rate > 0:
            ahead = self.sent / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def backfill(
    routes: Sequence[Route],
    settings: Settings,
    storage: Storage,
    reconciler: Reconciler,
    *,
    scope: Scope = Scope(),
    dry_run: bool = False,
    rate: float = 0.0,
    progress: Progress | None = None,
) -> dict[str, Tally]:
    """Backfill every route in ``scope``; returns what was found and done per function."""
    marks = Checkpoints(storage, settings, kind="backfill")
    pace = _Pace(rate)
    tallies: dict[str, Tally] = {}
    for route in (r for r in routes if scope.covers(r)):
        tally = tallies[route.name] = Tally()
        # A dry run neither resumes nor leaves a checkpoint: it only counts.
        start = "" if dry_run else await marks.get(route)
        page_size = max(1, min(1000, int(rate))) if rate > 0 else 1000
        async for page in reconciler.pages(
            route, prefix=scope.prefix, start_after=start, page=page_size
        ):
            tally.add(page)
            if dry_run:
                tally.enqueued += len(page.pending)
            else:
                sent = await reconciler.enqueue(route, page.pending)
                tally.enqueued += len(sent)
                tally.skipped += len(page.pending) - len(sent)
                await marks.put(route, page.last_key)
                await pace.after(len(sent))
            if progress:
                progress(route.name, tally)
        tally.complete = True
        if not dry_run:
            await marks.put(route, "")
    return tallies
