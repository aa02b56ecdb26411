"""What the console shows live, gathered once per process for every open page.

A :class:`Hub` works only while someone watches: the first poll of a page
starts it, and it stops ``idle`` seconds after the last. Meanwhile it

- follows the runtime's feed (:func:`runtime.ops.feed.follow`: an exclusive,
  auto-delete, capped queue of its own, so the deployment's queues see
  nothing of it) and keeps the last ``keep`` outcomes — recent invocations
  come from what the engine reports, never from listing buckets;
- reads queue depths, consumers and dead-letter counts every ``every``
  seconds with :func:`runtime.ops.status.gather` — passive declares only
  (``read=0``), which take nothing from any queue;
- reads the dead-letter queues themselves only when their counts change (or
  a dead-letter note arrives, or ``letters_every`` has passed), and only up to
  ``letters_limit`` entries in all. RabbitMQ cannot read a queue without taking
  its messages, so a read holds the entries for its milliseconds, and a
  ``bucketfn dlq replay`` running just then would not see them; polling them
  every few seconds while a page is open would make that likely.

Pages wait on :meth:`Hub.changed` (a long poll) and render what the hub holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from runtime.core.errors import BrokerError
from runtime.core.records import now
from runtime.ops import status
from runtime.ops.deadletters import DeadLetters, Entry
from runtime.ops.feed import follow

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.engine.feed import Batch, Note
    from runtime.http.console.backend import Backend
    from runtime.ops.deadletters import Filter

log = structlog.get_logger("bucketfn.console")

KEEP = 200  # recent invocations kept (and shown)
IDLE_S = 60.0  # stop following this long after the last poll
# Queue depths and counts. Each read costs ~0.2 s of CPU (status.gather builds an S3
# client to probe the store), ~5 % of a core while a page is open; pages stop polling
# while their tab is hidden, so a forgotten tab costs nothing once IDLE_S has passed.
EVERY_S = 5.0
LETTERS_EVERY_S = 60.0  # dead letters re-read at least this often while counts stay put
LETTERS_LIMIT = 1_000  # entries read automatically; `bucketfn status` reads as many
MIN_GAP_S = 1.0  # between two refreshes a burst of dead letters asks for
WINDOW_S = 300.0  # recent outcomes per function: the last five minutes
RATE_S = 60.0  # the rate: invocations finished in the last minute


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """One note of the feed as the console keeps it: numbered in the order it came."""

    seq: int
    note: Note


@dataclass(frozen=True, slots=True, kw_only=True)
class Letters:
    """The dead-letter queues as last read (``read`` False: not read, and why in ``error``)."""

    at: datetime
    total: int
    read: bool
    entries: tuple[Entry, ...] = ()
    error: str | None = None


@dataclass(slots=True)
class Recent:
    """One function's recent outcomes: (monotonic time, outcome), oldest first."""

    seen: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=100_000))

    def add(self, at: float, outcome: str) -> None:
        """Count one outcome."""
        self.seen.append((at, outcome))

    def since(self, start: float) -> Counter[str]:
        """Outcomes at or after ``start``."""
        return Counter(outcome for at, outcome in self.seen if at >= start)

    def forget(self, before: float) -> None:
        """Drop what is older than ``before``."""
        while self.seen and self.seen[0][0] < before:
            self.seen.popleft()


class Hub:
    """The live state of the console; one per API process."""

    def __init__(
        self,
        backend: Backend,
        *,
        keep: int = KEEP,
        idle: float = IDLE_S,
        every: float = EVERY_S,
        letters_limit: int = LETTERS_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._idle = idle
        self._every = every
        self._letters_limit = letters_limit
        self._clock = clock
        self.notes: deque[Seen] = deque(maxlen=keep)
        self.seq = 0  # the last note's number; never goes back while the process lives
        self.base = 0  # notes numbered above this belong to the current watch
        self.since: datetime | None = None  # when the current watch began
        self.dropped = 0  # notes the runtimes lost (their feed said so)
        self.live = False  # subscribed to the feed now
        self.feed_error: str | None = None
        self.report: status.Report | None = None
        self.letters: Letters | None = None
        self.letters_version = 0
        self.version = 0  # bumped whenever anything above changes
        self.recent: dict[str, Recent] = {}
        # Dead-letter reads and changes, one at a time: two readers would each
        # see only what the other was not holding.
        self.lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()
        self._counts: dict[str, int | None] | None = None
        self._letters_at = float("-inf")
        self._letters_due = True
        self._seen_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    # What pages call.

    def touch(self) -> None:
        """Someone is watching: start following if not already."""
        self._seen_at = self._clock()
        if self._task is None or self._task.done():
            if self._task is not None and not self._task.cancelled() and self._task.exception():
                log.error("console hub failed; restarting", exc_info=self._task.exception())
            self._task = asyncio.create_task(self._run(), name="bucketfn-console")

    async def changed(self, after: int, within: float) -> None:
        """Return once :attr:`version` is not ``after``, or after ``within`` seconds."""
        if self.version != after:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    def outcomes(self, function: str) -> tuple[Counter[str], int]:
        """``function``'s outcomes in the last five minutes, and how many finished in the last."""
        recent = self.recent.get(function)
        if recent is None:
            return Counter(), 0
        t = self._clock()
        recent.forget(t - WINDOW_S)
        window = recent.since(t - WINDOW_S)
        last = recent.since(t - RATE_S)
        return window, sum(last.values())

    async def read_letters(self, *, force: bool = False) -> Letters:
        """Read the dead-letter queues now (``force``: even past the automatic limit)."""
        counts = self._counts or {}
        total = sum(n for n in counts.values() if n)
        if total > self._letters_limit and not force:
            letters = Letters(
                at=now(),
                total=total,
                read=False,
                error=f"{total} entries: more than the {self._letters_limit} read automatically",
            )
        else:
            try:
                async with self.lock:
                    entries = await self.store().entries()
                letters = Letters(at=now(), total=len(entries), read=True, entries=tuple(entries))
            except BrokerError as exc:
                letters = Letters(at=now(), total=total, read=False, error=str(exc))
        self.letters = letters
        self.letters_version += 1
        self._letters_at = self._clock()
        # A read the broker refused is tried again at the next refresh, not in a minute.
        self._letters_due = letters.error is not None and total <= self._letters_limit
        self._bump()
        return letters

    async def taken(self, which: Filter) -> list[Entry]:
        """The entries ``which`` selects, read under the lock (nothing is removed)."""
        async with self.lock:
            return await self.store().entries(which)

    def store(self) -> DeadLetters:
        """The dead-letter queues on the API's connection; use them under :attr:`lock`."""
        return DeadLetters(self._backend.broker(), self._backend.settings, self._backend.app)

    def letters_changed(self) -> None:
        """Dead letters came or went: read them again at a refresh that comes soon."""
        self._letters_due = True
        self._poke.set()

    def refresh_soon(self) -> None:
        """Queue figures changed (a replay or purge): refresh them without waiting."""
        self._poke.set()

    # The background work.

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        # A new watch: what was kept is from before a gap nobody saw.
        self.notes.clear()
        self.base, self.since, self.dropped = self.seq, now(), 0
        settings = self._backend.settings
        feed = asyncio.create_task(
            follow(settings, self._on_batch, on_link=self._linked, on_lost=self._lost)
        )
        try:
            while self._clock() - self._seen_at < self._idle:
                started = self._clock()
                await self._refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), self._every)
                self._poke.clear()
                # A burst of dead letters pokes once per note; refresh at most once a gap.
                await asyncio.sleep(max(0.0, MIN_GAP_S - (self._clock() - started)))
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            self.live = False
            self._bump()

    async def _refresh(self) -> None:
        backend = self._backend
        report = await status.gather(backend.settings, backend.app, read=0)
        counts = {r.queue: (r.letters.count if r.letters else None) for r in report.rows if r.known}
        self.report = report
        stale = self._clock() - self._letters_at >= LETTERS_EVERY_S
        if counts != self._counts or self._letters_due or stale:
            self._counts = counts
            await self.read_letters()
        self._bump()

    def _on_batch(self, batch: Batch) -> None:
        t = self._clock()
        self.dropped += batch.dropped
        for note in batch.notes:
            if note.kind not in ("finished", "rejected"):
                continue  # routing notes: the outcome follows
            self.seq += 1
            self.notes.append(Seen(seq=self.seq, note=note))
            outcome = note.outcome or "dead-letter"  # a rejected message is dead-lettered
            self.recent.setdefault(note.function or "", Recent()).add(t, outcome)
            if outcome == "dead-letter":
                self.letters_changed()
        self._bump()

    def _linked(self, queue: str) -> None:
        log.info("console following the feed", queue=queue)
        self.live, self.feed_error = True, None
        self._bump()

    def _lost(self, error: str) -> None:
        self.live, self.feed_error = False, error
        self._bump()
