"""Every exception bucketfn raises, in one tree.

::

    BucketfnError
    ├── ConfigError (ValueError)        a route, decorator option, app or setting is wrong
    ├── EventError (ValueError)         a broker message is not a bucket event we can parse
    ├── InvocationSignal                raised by a handler on purpose
    │   ├── Retry                       try again after ``delay`` seconds
    │   └── Reject                      give up now: straight to the dead-letter queue
    ├── JobRefused (ValueError)         a job the API cannot create (``kind`` says why)
    ├── InputError (ValueError)         the object's content is malformed: permanent, no retries
    ├── UsageError (ValueError)         a function used the runtime wrongly: permanent, fix it
    ├── StorageError                    an S3 call failed
    │   ├── ObjectGone                  the object (or that version) no longer exists
    │   └── Superseded                  the object changed since the event (412 on If-Match)
    └── BrokerError                     a publish was not confirmed, or returned unroutable

Permanent failures (``Reject``, ``InputError``, ``UsageError``, ``EventError``) go
to a dead-letter queue at once; everything else is retried with backoff (see
``runtime.core.retry``). The public classes say ``runtime`` as their module, as
httpx's do, so records and logs name them as authors import them.
"""

from __future__ import annotations

from typing import Literal


class BucketfnError(Exception):
    """Base class of every error bucketfn raises."""


class ConfigError(BucketfnError, ValueError):
    """A route, decorator option, app or setting is invalid; raised at import or init."""


class EventError(BucketfnError, ValueError):
    """A message that is not a parseable bucket event.

    ``body`` keeps (a bounded prefix of) the raw message so the dead-letter entry
    shows what arrived, not only that something did.
    """

    def __init__(self, reason: str, *, body: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.body = body[:4096]


class InvocationSignal(BucketfnError):
    """Base of the signals a handler raises on purpose."""


class Retry(InvocationSignal):
    """Ask for another attempt after ``delay`` seconds (``None``: the policy's backoff)."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class Reject(InvocationSignal):
    """Give up on this event now: it goes to the dead-letter queue without retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Refusal = Literal["unknown-function", "input-refused", "input-missing", "idempotency-conflict"]


class JobRefused(BucketfnError, ValueError):
    """A job that cannot be created; ``kind`` says why, ``reason`` says it to a person."""

    def __init__(self, kind: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.kind: Refusal = kind
        self.reason = reason


class InputError(BucketfnError, ValueError):
    """The object's content is malformed (bad CSV, invalid JSON, truncated gzip…).

    Retrying cannot fix content, so this is permanent. ``where`` locates the problem
    (a byte offset, a line, a JSON path) when known.
    """

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        super().__init__(f"{reason} (at {where})" if where else reason)
        self.reason = reason
        self.where = where


class UsageError(BucketfnError, ValueError):
    """A function used the runtime wrongly (e.g. an output name that escapes its prefix).

    A retry runs the same code, so this is permanent: the code must change.
    """


class StorageError(BucketfnError):
    """An S3 operation failed; retryable unless a subclass says otherwise."""


class ObjectGone(StorageError):
    """The object or version the event names no longer exists."""


class Superseded(StorageError):
    """The object changed after the event was emitted; a newer event will handle it."""


class Unaddressable(StorageError):
    """The store refuses to name the object at all (HTTP 400: ``a/../b``, ``a//b``, a key
    too long): no such object can exist, so no retry can reach it."""


class BrokerError(BucketfnError):
    """A publish was nacked, returned as unroutable, or the connection failed."""


PERMANENT: tuple[type[BaseException], ...] = (
    Reject,
    InputError,
    UsageError,
    EventError,
    Unaddressable,
)
"""Errors that no retry can fix."""

for _public in (
    BucketfnError,
    ConfigError,
    EventError,
    InvocationSignal,
    Retry,
    Reject,
    InputError,
    JobRefused,
    UsageError,
    StorageError,
    ObjectGone,
    Superseded,
    Unaddressable,
    BrokerError,
):
    _public.__module__ = "runtime"
