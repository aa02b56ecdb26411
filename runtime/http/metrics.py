"""Prometheus metrics, fed by the engine's observer seam (as Dramatiq's prometheus middleware).

Names follow Prometheus conventions: ``bucketfn_`` prefix, base units
(seconds), ``_total`` on counters. Labels are bounded — a function name, an
outcome, a queue — never a key or an event id, which would make one series per
object. Each :class:`Metrics` owns its registry rather than the process-wide
default, so tests (and a process hosting two runtimes) never share counters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from runtime.engine.observer import Observer
from runtime.engine.outcome import Status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from runtime.core.events import ObjectEvent
    from runtime.core.records import Invocation
    from runtime.engine.outcome import Outcome

# Handlers run from milliseconds (a small CSV) to many minutes (a 2 GB rollup).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# Event → start: sub-millisecond on a quiet loopback, hours behind a backlog.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
EVENT_RESULTS = ("routed", "unmatched", "rejected")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Metrics(Observer):
    """Every runtime metric, on a registry of its own (``self.registry``).

    ``functions`` are initialised at zero, so a rate over a function that has
    not run yet is 0 rather than absent. ``wall`` is the clock event times are
    compared with (injectable for tests).
    """

    def __init__(
        self,
        functions: Iterable[str] = (),
        *,
        registry: CollectorRegistry | None = None,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        # A ``_created`` series beside every counter doubles what is stored for a
        # timestamp no query here needs (process start is process_start_time_seconds).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream; takes no arguments
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self._wall = wall
        self.events = Counter(
            "bucketfn_events",
            "Bucket events taken from the ingress queue, by what became of them "
            "(rejected: not a bucket event, dead-lettered as it was).",
            ["result"],
            registry=r,
        )
        self.routed = Counter(
            "bucketfn_routed",
            "Invocations published by the dispatcher (one per event and matching function).",
            ["function"],
            registry=r,
        )
        self.invocations = Counter(
            "bucketfn_invocations",
            "Deliveries of invocations that ended, by outcome "
            "(ok, duplicate, superseded, retry, dead-letter).",
            ["function", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "bucketfn_invocation_duration_seconds",
            "Time of deliveries that ran the handler, checks and result record included.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "bucketfn_retries", "Invocations sent to a delay tier.", ["function"], registry=r
        )
        self.dead_letters = Counter(
            "bucketfn_dead_letters",
            "Messages put on a function's dead-letter queue (failed, or not an invocation).",
            ["function"],
            registry=r,
        )
        self.replays = Counter(
            "bucketfn_replays",
            "Replayed dead letters delivered again (their first delivery after the replay).",
            ["function"],
            registry=r,
        )
        self.healed_total = Counter(
            "bucketfn_healed",
            "Objects the sweep enqueued because no event had run them (notifications missed).",
            ["function"],
            registry=r,
        )
        self.heal_age = Histogram(
            "bucketfn_heal_age_seconds",
            "How old a healed object was when the sweep found it.",
            ["function"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "bucketfn_inflight_invocations",
            "Handlers running now.",
            ["function"],
            registry=r,
        )
        self.event_lag = Histogram(
            "bucketfn_event_lag_seconds",
            "From the event's time to its handler's start, first attempts only "
            "(a retry's wait is policy, not lag).",
            ["function"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag_seconds = 0.0
        self.loop_lag = Gauge(
            "bucketfn_event_loop_lag_seconds",
            "How late the event loop last woke a timer: work blocking the loop shows here.",
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        # id(invocation) → (function, a token of this start), for handlers in flight.
        self._running: dict[int, tuple[str, object]] = {}
        for result in EVENT_RESULTS:
            self.events.labels(result)
        for function in functions:
            self._initialise(function)

    def _initialise(self, function: str) -> None:
        for status in Status:
            self.invocations.labels(function, status.value)
        for family in (
            self.routed,
            self.retries,
            self.dead_letters,
            self.replays,
            self.healed_total,
        ):
            family.labels(function)
        self.inflight.labels(function)
        self.duration.labels(function)
        self.event_lag.labels(function)

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        """Count a routed event and each invocation it fanned out to."""
        self.events.labels("routed").inc()
        for function in functions:
            self.routed.labels(function).inc()

    def unmatched(self, event: ObjectEvent) -> None:
        """Count an event no route wanted."""
        self.events.labels("unmatched").inc()

    def rejected(self, function: str | None, reason: str, letter_id: str) -> None:
        """Count a message that was dead-lettered as it came."""
        if function is None:
            self.events.labels("rejected").inc()
        else:
            self.dead_letters.labels(function).inc()

    def started(self, invocation: Invocation) -> None:
        """A handler starts: in flight, and (first attempts) how far behind its event."""
        function = invocation.function
        key, token = id(invocation), object()
        self._running[key] = (function, token)
        self.inflight.labels(function).inc()
        # A delivery cancelled mid-handler (shutdown past the grace, broker lost)
        # never reaches finished(): its task's end takes it out of flight instead.
        # The token keeps that from touching a later invocation that reused the id.
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: self._landed(key, token))
        event_time = invocation.event.event_time
        if event_time is not None and invocation.attempt == 1 and invocation.replays == 0:
            lag = (self._wall() - event_time).total_seconds()
            self.event_lag.labels(function).observe(max(lag, 0.0))

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        """Count the outcome; time it if a handler ran."""
        function = invocation.function
        if self._landed(id(invocation)):
            self.duration.labels(function).observe(seconds)
        self.invocations.labels(function, outcome.status.value).inc()
        if outcome.status is Status.RETRY:
            self.retries.labels(function).inc()
        elif outcome.status is Status.DEAD_LETTER:
            self.dead_letters.labels(function).inc()
        if invocation.replays > 0 and invocation.attempt == 1:
            self.replays.labels(function).inc()

    def healed(self, function: str, event: ObjectEvent, age: float | None) -> None:
        """Count an object the sweep healed, and how old it was."""
        self.healed_total.labels(function).inc()
        if age is not None:
            self.heal_age.labels(function).observe(max(age, 0.0))

    def _landed(self, key: int, token: object | None = None) -> bool:
        """Take an invocation out of flight (only that start, if ``token``); False if not in it."""
        running = self._running.get(key)
        if running is None or (token is not None and running[1] is not token):
            return False
        del self._running[key]
        self.inflight.labels(running[0]).dec()
        return True

    async def watch_loop(self, every: float = 0.5) -> None:
        """Sleep ``every`` seconds, forever, and record how late each wake-up is."""
        # time.monotonic, not loop.time: uvloop's clock moves in whole milliseconds.
        while True:
            asleep = time.monotonic()
            await asyncio.sleep(every)
            self.loop_lag_seconds = max(time.monotonic() - asleep - every, 0.0)
            self.loop_lag.set(self.loop_lag_seconds)
