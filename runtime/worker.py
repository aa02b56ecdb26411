"""One invocation: idempotency check → handler → result record; then retry or dead-letter.

The broker-facing part (decode, ack) is in :meth:`Worker.handle`; the pure
invocation in :meth:`Worker.invoke` is what the test harness drives too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from runtime import names, retry
from runtime.context import Context
from runtime.errors import ObjectGone, Reject, Superseded
from runtime.records import (
    Attempt,
    DeadLetter,
    ErrorInfo,
    Invocation,
    Result,
    Source,
    dumps,
    now,
)
from runtime.routing import PRODUCER_META

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.names import Queues
    from runtime.routing import Route
    from runtime.storage import Storage


class Publisher(Protocol):
    """The publishing seam (RabbitMQ with confirms, or the harness)."""

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish and return once the message is safely stored."""
        ...


class Status(Enum):
    """How an invocation ended."""

    OK = "ok"
    DUPLICATE = "duplicate"  # a result for this very revision exists already
    SUPERSEDED = "superseded"  # the object changed since the event
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one delivery came to."""

    status: Status
    result: Result | None = None
    error: ErrorInfo | None = None


class Worker:
    """Runs one function's invocations."""

    def __init__(
        self,
        route: Route,
        *,
        storage: Storage,
        publisher: Publisher,
        queues: Queues,
        output_bucket: str,
        chunk_size: int,
    ) -> None:
        self.route = route
        self.storage = storage
        self.publisher = publisher
        self.queues = queues
        self.output_bucket = output_bucket
        self.chunk_size = chunk_size
        self.log = structlog.get_logger("bucketfn.worker").bind(function=route.name)

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        """Process one queue message; ack it only once its successor is safe."""
        try:
            inv = Invocation.model_validate_json(message.body)
        except ValidationError as exc:
            # Not ours to understand: keep it, with the reason, rather than drop it.
            await self.publisher.publish(
                self.queues.dead_letter(self.route.name),
                message.body,
                headers={"x-bucketfn-reason": f"undecodable invocation: {exc.errors()[0]['msg']}"},
            )
            await message.ack()
            return Outcome(status=Status.DEAD_LETTER)
        outcome = await self.process(inv)
        await message.ack()
        return outcome

    async def process(self, inv: Invocation) -> Outcome:
        """Invoke, and on failure publish the retry or the dead letter."""
        ev = inv.event
        log = self.log.bind(event_id=ev.event_id, bucket=ev.bucket, key=ev.key, attempt=inv.attempt)
        started = time.monotonic()
        try:
            outcome = await self.invoke(inv)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            return await self._failed(inv, exc, log)
        log.info(
            "invocation",
            status=outcome.status.value,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return outcome

    async def invoke(self, inv: Invocation) -> Outcome:
        """Run the handler unless a result for this revision exists; write the record."""
        ev = inv.event
        route = self.route
        key = names.result_key(route.name, ev.key)
        previous = await self.storage.head(self.output_bucket, key)
        if previous is not None:
            seen = _Seen.of(previous.metadata or {})
            if seen.status == "ok" and ev.revision and seen.revision == ev.revision:
                return Outcome(status=Status.DUPLICATE)
            if _older(ev.sequencer, seen.sequencer):
                # A newer write of this key has a record already: never overwrite it.
                return Outcome(status=Status.SUPERSEDED)
        if ev.sequencer is None:
            # Without a sequencer to order writes, ask the store what is current.
            current = await self.storage.head(ev.bucket, ev.key)
            if current is None or not ev.describes(current.version_id, current.etag):
                return Outcome(status=Status.SUPERSEDED)

        log = self.log.bind(event_id=ev.event_id, bucket=ev.bucket, key=ev.key, attempt=inv.attempt)
        ctx = Context(
            function=route.name,
            function_version=route.version,
            event=ev,
            attempt=inv.attempt,
            storage=self.storage,
            output_bucket=self.output_bucket,
            chunk_size=self.chunk_size,
            log=log,
        )
        started_at = now()
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(route.retry.timeout):
                output = await route.handler(ev, ctx)
        except (Superseded, ObjectGone):
            return Outcome(status=Status.SUPERSEDED)
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        result = Result(
            status="ok",
            function=route.name,
            function_version=route.version,
            event_id=ev.event_id,
            output=output,
            outputs=tuple(ctx.outputs),
            source=Source.of(ev),
            attempts=len(inv.history) + 1,  # every attempt ever, replays included
            history=inv.history,
            started_at=started_at,
            finished_at=now(),
            duration_ms=round((time.monotonic() - t0) * 1000, 3),
        )
        await self._record(key, result)
        return Outcome(status=Status.OK, result=result)

    async def _record(self, key: str, result: Result) -> None:
        try:
            body = dumps(result)
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            # Retrying cannot make a return value serializable: the code must change.
            raise Reject(f"the function's return value is not JSON-serializable: {exc}") from exc
        await self.storage.put(
            self.output_bucket,
            key,
            body,
            content_type="application/json",
            metadata={
                PRODUCER_META: self.route.name,
                REVISION_META: result.source.revision,
                SEQUENCER_META: result.source.sequencer or "",
                STATUS_META: result.status,
            },
        )

    async def _failed(self, inv: Invocation, exc: Exception, log: Any) -> Outcome:
        route = self.route
        error = ErrorInfo.of(exc)
        age = (now() - inv.first_seen).total_seconds()
        decision = retry.decide(route.retry, error=exc, attempt=inv.attempt, age=age)
        attempt = Attempt(
            attempt=inv.attempt,
            at=now(),
            error_type=error.type,
            message=error.message,
            fingerprint=error.fingerprint,
            delay_ms=decision.delay_ms or None,
        )
        history = (*inv.history, attempt)
        if decision.verdict is retry.Verdict.RETRY:
            nxt = inv.model_copy(update={"attempt": inv.attempt + 1, "history": history})
            await self.publisher.publish(
                self.queues.retry(route.name, decision.tier_ms),
                dumps(nxt),
                headers={"x-bucketfn-attempt": nxt.attempt},
                message_id=inv.event.event_id,
                expiration_ms=decision.delay_ms,
            )
            log.warning(
                "invocation failed, will retry",
                error_type=error.type,
                error=error.message,
                delay_ms=decision.delay_ms,
            )
            return Outcome(status=Status.RETRY, error=error)

        final = inv.model_copy(update={"history": history})
        letter = DeadLetter(
            id=f"{inv.event.event_id}-{inv.attempt}-{inv.replays}",
            function=route.name,
            function_version=route.version,
            reason=decision.reason,
            invocation=final,
            error=error,
        )
        await self.publisher.publish(
            self.queues.dead_letter(route.name),
            dumps(letter),
            headers={"x-bucketfn-kind": "dead-letter", "x-bucketfn-fingerprint": error.fingerprint},
            message_id=letter.id,
        )
        ev = inv.event
        result = Result(
            status="dead-lettered",
            function=route.name,
            function_version=route.version,
            event_id=ev.event_id,
            source=Source.of(ev),
            attempts=len(history),
            history=history,
            started_at=attempt.at,
            finished_at=now(),
            duration_ms=0,
            error=error,
        )
        await self._record(names.result_key(route.name, ev.key), result)
        log.error(
            "invocation dead-lettered",
            reason=decision.reason,
            error_type=error.type,
            error=error.message,
            fingerprint=error.fingerprint,
            dead_letter_id=letter.id,
        )
        return Outcome(status=Status.DEAD_LETTER, error=error)


REVISION_META = "bucketfn-source-revision"
SEQUENCER_META = "bucketfn-source-sequencer"
STATUS_META = "bucketfn-status"


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a result record's metadata says about the invocation that wrote it."""

    status: str
    revision: str
    sequencer: str | None

    @classmethod
    def of(cls, meta: Mapping[str, str]) -> _Seen:
        return cls(
            meta.get(STATUS_META, ""), meta.get(REVISION_META, ""), meta.get(SEQUENCER_META) or None
        )


def _older(sequencer: str | None, than: str | None) -> bool:
    """S3 sequencers order the writes of one key: hex strings, compared as numbers."""
    if not sequencer or not than:
        return False
    try:
        return int(sequencer, 16) < int(than, 16)
    except ValueError:
        return False
