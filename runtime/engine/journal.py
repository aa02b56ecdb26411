"""The first observer: one structured log line per thing that happened.

What the worker and the dispatcher used to log themselves, now fed by the
observer seam, so a log line and a metric can never disagree about an outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from runtime.engine.observer import Observer
from runtime.engine.outcome import Status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runtime.core.events import ObjectEvent
    from runtime.core.records import Invocation
    from runtime.engine.outcome import Outcome


class Journal(Observer):
    """Logs dispatches at debug, outcomes at info, retries at warning, dead letters at error."""

    def __init__(self) -> None:
        self._worker = structlog.get_logger("bucketfn.worker")
        self._dispatcher = structlog.get_logger("bucketfn.dispatcher")

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        """Log each routed invocation (debug: one line per event is a lot at 2k/s)."""
        for function in functions:
            self._dispatcher.debug(
                "routed",
                function=function,
                event_id=event.event_id,
                bucket=event.bucket,
                key=event.key,
            )

    def unmatched(self, event: ObjectEvent) -> None:
        """Log an event no route wants."""
        self._dispatcher.debug(
            "no route", event_id=event.event_id, bucket=event.bucket, key=event.key
        )

    def rejected(self, function: str | None, reason: str, letter_id: str) -> None:
        """Log a message that is not an event (ingress) or not an invocation (a function's)."""
        if function is None:
            self._dispatcher.warning(
                "bad event dead-lettered", reason=reason, dead_letter_id=letter_id
            )
        else:
            self._worker.error(
                "undecodable invocation dead-lettered",
                function=function,
                reason=reason,
                dead_letter_id=letter_id,
            )

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        """Log how the delivery ended."""
        ev = invocation.event
        log = self._worker.bind(
            function=invocation.function,
            event_id=ev.event_id,
            bucket=ev.bucket,
            key=ev.key,
            attempt=invocation.attempt,
        )
        error = outcome.error
        if outcome.status is Status.RETRY and error is not None:
            log.warning(
                "invocation failed, will retry",
                error_type=error.type,
                error=error.message,
                delay_ms=outcome.delay_ms,
            )
        elif outcome.status is Status.DEAD_LETTER and error is not None:
            log.error(
                "invocation dead-lettered",
                reason=outcome.reason,
                error_type=error.type,
                error=error.message,
                fingerprint=error.fingerprint,
                dead_letter_id=outcome.letter_id,
            )
        else:
            log.info(
                "invocation", status=outcome.status.value, duration_ms=round(seconds * 1000, 2)
            )
