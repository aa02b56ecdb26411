"""Wire and storage models: the invocation message and the result record.

Dead letters are in :mod:`runtime.core.letters`.

Pydantic lives at these boundaries only; they are what other processes (and
people, at 3 a.m.) read, so every field is named for a reader.
"""

from __future__ import annotations

import hashlib
import traceback
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from runtime.core.events import ObjectEvent
from runtime.core.names import JOB_ID_PATTERN, job_result_key, result_key

TRACEBACK_LIMIT = 8 * 1024  # bytes of traceback kept: enough to read, bounded for the queue


def dumps(model: BaseModel) -> bytes:
    """A model as the JSON bytes put on the wire and in the store (orjson, UTC times)."""
    return orjson.dumps(model.model_dump(mode="json"))


def digest(data: bytes) -> str:
    """A short stable id for a message body or a text (16 hex digits)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class Model(BaseModel):
    """Frozen, and tolerant of fields added by newer versions (rolling upgrades)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Attempt(Model):
    """One failed attempt, kept with the invocation as it is retried."""

    attempt: int
    at: datetime
    error_type: str
    message: str
    fingerprint: str
    delay_ms: int | None = None


class Invocation(Model):
    """The message on a function's queue: one event for one function."""

    function: str
    event: ObjectEvent
    attempt: int = 1
    history: tuple[Attempt, ...] = ()
    first_seen: datetime = Field(default_factory=now)
    replays: int = 0
    # Set for a job created through the API: its record goes to the job's own key
    # (``names.job_result_key``) rather than beside the source key.
    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)

    @property
    def record_key(self) -> str:
        """Where its result record goes, in the output bucket.

        A job's record has a key of its own: two jobs on one object never share
        it, and no bucket event for that object ever overwrites a job's record.
        """
        if self.job_id is not None:
            return job_result_key(self.job_id)
        return result_key(self.function, self.event.key)


class ErrorInfo(Model):
    """What went wrong, for a person and for grouping."""

    type: str
    message: str
    traceback: str = ""
    fingerprint: str
    where: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``: bounded traceback and a stable fingerprint."""
        tb = "".join(traceback.format_exception(exc))
        if len(tb) > TRACEBACK_LIMIT:
            tb = "…" + tb[-TRACEBACK_LIMIT:]
        return cls(
            type=qualname(type(exc)),
            message=str(exc)[:2000],
            traceback=tb,
            fingerprint=error_fingerprint(exc),
            where=getattr(exc, "where", None),
        )


def qualname(tp: type[BaseException]) -> str:
    """``module.Class`` of an exception type (bare name for builtins)."""
    return f"{tp.__module__}.{tp.__qualname__}" if tp.__module__ != "builtins" else tp.__name__


def fingerprint(*parts: str) -> str:
    """The one grouping key of bucketfn: 12 hex digits of SHA-256 over ``parts``.

    Dead letters, ``dlq ls`` groups and the console all group by it, so it is
    computed here only.
    """
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def error_fingerprint(exc: BaseException) -> str:
    """Same bug → same fingerprint: the error type and the code path, not the message.

    Messages carry keys, sizes and offsets that differ per event; line numbers
    move with unrelated edits. File names and function names along the
    traceback identify the bug and survive both.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    path = "|".join(f"{PurePath(f.filename).name}:{f.name}" for f in frames[-6:])
    return fingerprint(qualname(type(exc)), path)


class Source(Model):
    """The object an invocation ran on."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    sequencer: str | None = None
    size: int | None
    event_name: str
    event_time: datetime | None

    @classmethod
    def of(cls, event: ObjectEvent) -> Source:
        """The source part of ``event``."""
        return cls(
            bucket=event.bucket,
            key=event.key,
            etag=event.etag,
            version_id=event.version_id,
            sequencer=event.sequencer,
            size=event.size,
            event_name=event.event_name,
            event_time=event.event_time,
        )

    @property
    def revision(self) -> str:
        """Version id, else etag: what identifies the content that was processed."""
        return self.version_id or self.etag or ""


class Result(Model):
    """``job-outputs/<function>/<source key>/result.json``: every invocation's record."""

    status: Literal["ok", "dead-lettered"]
    function: str
    function_version: str
    event_id: str
    output: Any = None
    outputs: tuple[str, ...] = ()
    source: Source
    attempts: int
    history: tuple[Attempt, ...] = ()
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    error: ErrorInfo | None = None
