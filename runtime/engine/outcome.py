"""How one delivery ended: the value the worker returns and every observer sees."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.core.records import ErrorInfo, Result


class Status(Enum):
    """How an invocation ended."""

    OK = "ok"
    DUPLICATE = "duplicate"  # a result for this very revision exists already
    SUPERSEDED = "superseded"  # the object changed since the event
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one delivery came to.

    ``result`` is the record written (ok and dead-lettered invocations);
    ``error`` what failed; ``reason`` why it was dead-lettered; ``delay_ms``
    the wait before a retry; ``letter_id`` the dead-letter entry's id.
    """

    status: Status
    result: Result | None = None
    error: ErrorInfo | None = None
    reason: str | None = None
    delay_ms: int | None = None
    letter_id: str | None = None
