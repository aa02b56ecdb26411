"""The observer seam: what the engine reports as it works, for logs, metrics and the console.

As Dramatiq's middleware hooks ``after_process_message``, the engine calls an
:class:`Observer` at each step and knows nothing of who listens. Logging is
the first observer (:mod:`runtime.engine.journal`); metrics and the console
plug in here too, never into the worker.

Hooks are plain synchronous calls on the event loop: they must be cheap and
must not block (put work on a queue if it is not). An observer that raises is
logged and ignored — watching must never change what happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from runtime.core.events import ObjectEvent
    from runtime.core.records import Invocation
    from runtime.engine.outcome import Outcome

_log = structlog.get_logger("bucketfn.observer")


class Observer:
    """Every hook the engine calls; each does nothing here, so override only what you need."""

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        """An event was routed: one invocation per function was published, confirmed."""

    def unmatched(self, event: ObjectEvent) -> None:
        """An event matched no route (nothing was published)."""

    def rejected(self, function: str | None, reason: str, letter_id: str) -> None:
        """A message was not understood and went to a dead-letter queue as it was.

        ``function`` is None for the ingress (not a bucket event), else the
        function whose queue held something that is not an invocation.
        """

    def started(self, invocation: Invocation) -> None:
        """An invocation is about to run its handler (after the duplicate check)."""

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        """A delivery ended: ok, duplicate, superseded, retry or dead-letter (``outcome.status``).

        ``seconds`` is the whole delivery, checks and record included.
        """

    def healed(self, function: str, event: ObjectEvent, age: float | None) -> None:
        """The sweep enqueued an object no event had run, ``age`` seconds after its write."""


class Observers(Observer):
    """Several observers as one; a failing observer never reaches the engine."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._all: tuple[Observer, ...] = tuple(observers)

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.dispatched, event, functions)

    def unmatched(self, event: ObjectEvent) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.unmatched, event)

    def rejected(self, function: str | None, reason: str, letter_id: str) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.rejected, function, reason, letter_id)

    def started(self, invocation: Invocation) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.started, invocation)

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.finished, invocation, outcome, seconds)

    def healed(self, function: str, event: ObjectEvent, age: float | None) -> None:
        """Tell every observer."""
        for o in self._all:
            _safely(o.healed, function, event, age)


def _safely(hook: Callable[..., object], *args: object) -> None:
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - an observer's bug must not change what the engine does
        _log.exception("observer failed", hook=getattr(hook, "__qualname__", repr(hook)))
