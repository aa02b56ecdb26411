"""Wire and storage models: the invocation message, the result record, dead letters.

Pydantic lives at these boundaries only; they are what other processes (and
people, at 3 a.m.) read, so every field is named for a reader.
"""

from __future__ import annotations

import base64
import hashlib
import traceback
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from runtime.events import ObjectEvent

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


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Attempt(_Model):
    """One failed attempt, kept with the invocation as it is retried."""

    attempt: int
    at: datetime
    error_type: str
    message: str
    fingerprint: str
    delay_ms: int | None = None


class Invocation(_Model):
    """The message on a function's queue: one event for one function."""

    function: str
    event: ObjectEvent
    attempt: int = 1
    history: tuple[Attempt, ...] = ()
    first_seen: datetime = Field(default_factory=now)
    replays: int = 0


class ErrorInfo(_Model):
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
            type=_qualname(type(exc)),
            message=str(exc)[:2000],
            traceback=tb,
            fingerprint=fingerprint(exc),
            where=getattr(exc, "where", None),
        )


def _qualname(tp: type[BaseException]) -> str:
    return f"{tp.__module__}.{tp.__qualname__}" if tp.__module__ != "builtins" else tp.__name__


def fingerprint(exc: BaseException) -> str:
    """Same bug → same fingerprint: the error type and the code path, not the message.

    Messages carry keys, sizes and offsets that differ per event; line numbers
    move with unrelated edits. File names and function names along the
    traceback identify the bug and survive both.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    path = "|".join(f"{PurePath(f.filename).name}:{f.name}" for f in frames[-6:])
    digest = hashlib.sha256(f"{_qualname(type(exc))}|{path}".encode())
    return digest.hexdigest()[:12]


class Source(_Model):
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


class Result(_Model):
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


class DeadLetter(_Model):
    """A function's dead-letter entry: the event and its whole story."""

    kind: Literal["dead-letter"] = "dead-letter"
    id: str
    function: str
    function_version: str
    reason: str
    invocation: Invocation
    error: ErrorInfo
    dead_lettered_at: datetime = Field(default_factory=now)


class IngressDeadLetter(_Model):
    """A message on the ingress queue that is not a bucket event."""

    kind: Literal["ingress-dead-letter"] = "ingress-dead-letter"
    id: str
    reason: str
    body_text: str | None = None
    body_base64: str | None = None
    received_at: datetime = Field(default_factory=now)

    @classmethod
    def of(cls, ident: str, reason: str, body: bytes) -> IngressDeadLetter:
        """Keep the body readable when it is text, lossless when it is not."""
        try:
            return cls(id=ident, reason=reason, body_text=body.decode())
        except UnicodeDecodeError:
            return cls(id=ident, reason=reason, body_base64=base64.b64encode(body).decode())
