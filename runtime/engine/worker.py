"""One invocation: idempotency check → handler → result record; then retry or dead-letter.

The broker-facing part (decode, ack) is :meth:`Worker.handle`; the invocation
itself, :meth:`Worker.invoke`, is what the test harness drives too. What
happened is reported to the observers, never logged here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from runtime.app.context import Context
from runtime.app.ledger import Standing
from runtime.core import retry
from runtime.core.errors import ObjectGone, Reject, Superseded
from runtime.core.letters import DeadLetter, Undecodable
from runtime.core.names import Header
from runtime.core.records import Attempt, ErrorInfo, Invocation, Result, Source, dumps, now
from runtime.engine.observer import Observer, Observers
from runtime.engine.outcome import Outcome, Status
from runtime.engine.record import Record
from runtime.engine.seen import Seen
from runtime.engine.turns import Turns

if TYPE_CHECKING:
    from datetime import datetime

    from aio_pika.abc import AbstractIncomingMessage

    from runtime.app.router import Route
    from runtime.core.names import Queues
    from runtime.core.seams import ObjectInfo, Publisher, Storage


UNWRITTEN = {
    Standing.LOST: Status.SUPERSEDED,  # a newer revision's record is in place: it stays
    Standing.DONE: Status.DUPLICATE,  # another process's copy of this invocation succeeded
}
"""A record the worker did not write, and what its invocation then counts as."""


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
        observer: Observer | None = None,
    ) -> None:
        self.route = route
        self.storage = storage
        self.publisher = publisher
        self.queues = queues
        self.output_bucket = output_bucket
        self.chunk_size = chunk_size
        self.observer = observer or Observers()
        self.turns = Turns()
        self.log = structlog.get_logger("bucketfn.worker").bind(function=route.name)

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        """Process one queue message; ack it only once its successor is safe."""
        try:
            inv = Invocation.model_validate_json(message.body)
        except ValidationError as exc:
            # Not ours to understand: keep it, with the reason, rather than drop it.
            reason = f"undecodable invocation: {exc.errors()[0]['msg']}"
            letter = Undecodable.of(self.route.name, reason, message.body)
            await self.publisher.publish(
                self.queues.dead_letter(self.route.name),
                dumps(letter),
                headers={Header.KIND: letter.kind},
                message_id=letter.id,
            )
            await message.ack()
            self.observer.rejected(self.route.name, reason, letter.id)
            return Outcome(status=Status.DEAD_LETTER, reason=reason, letter_id=letter.id)
        try:
            outcome = await self.process(inv)
        except Exception as exc:  # noqa: BLE001 - the failure path itself failed (S3 or broker trouble)
            # Never an immediate requeue (on RabbitMQ 4 a nack never reaches the
            # delivery limit): park it in a delay tier and let backoff space the tries.
            outcome = await self._park(inv, exc)
            self.observer.finished(inv, outcome, 0.0)
        await message.ack()
        return outcome

    async def process(self, inv: Invocation) -> Outcome:
        """Invoke, and on failure publish the retry or the dead letter.

        One at a time per record (see :mod:`runtime.engine.turns`): a second
        copy of an invocation waits, then finds the first one's record.
        """
        async with self.turns.take(f"{inv.event.bucket}/{inv.record_key}"):
            started = time.monotonic()
            try:
                outcome = await self.invoke(inv)
            except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
                outcome = await self._failed(inv, exc)
            self.observer.finished(inv, outcome, time.monotonic() - started)
            return outcome

    async def invoke(self, inv: Invocation) -> Outcome:
        """Run the handler unless a result for this revision exists; write the record."""
        ev = inv.event
        route = self.route
        previous = await self.storage.head(self.output_bucket, inv.record_key)
        seen = Seen.of(previous.metadata or {}) if previous is not None else None
        if seen is not None and seen.done(ev.revision):
            return Outcome(status=Status.DUPLICATE)
        if ev.sequencer is None or (seen is not None and seen.newer_than(ev.sequencer)):
            # Without a sequencer to order writes, or with a record of a later one, ask
            # the store what is current: its word outranks sequencers (two MinIO servers'
            # clocks can order them wrongly), as when the record is written.
            current = await self.storage.head(ev.bucket, ev.key)
            if current is None or not ev.describes(current.version_id, current.etag):
                return Outcome(status=Status.SUPERSEDED)

        ctx = Context(
            function=route.name,
            function_version=route.version,
            event=ev,
            attempt=inv.attempt,
            storage=self.storage,
            output_bucket=self.output_bucket,
            chunk_size=self.chunk_size,
            log=self.log.bind(
                event_id=ev.event_id, bucket=ev.bucket, key=ev.key, attempt=inv.attempt
            ),
        )
        self.observer.started(inv)
        started_at = now()
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(route.retry.timeout):
                output = await route.handler(ev, ctx)
        except (Superseded, ObjectGone):
            return Outcome(status=Status.SUPERSEDED)
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        result = self._result(
            inv,
            status="ok",
            history=inv.history,
            started_at=started_at,
            duration_ms=round((time.monotonic() - t0) * 1000, 3),
            output=output,
            outputs=ctx.outputs,
        )
        standing = await self._record(inv, result, held=previous)
        if standing in UNWRITTEN:
            return Outcome(status=UNWRITTEN[standing])
        return Outcome(status=Status.OK, result=result)

    def _result(
        self,
        inv: Invocation,
        *,
        status: Literal["ok", "dead-lettered"],
        history: tuple[Attempt, ...],
        started_at: datetime,
        duration_ms: float,
        output: Any = None,
        outputs: tuple[str, ...] = (),
        error: ErrorInfo | None = None,
    ) -> Result:
        """The one place a result record is built, for successes and dead letters alike."""
        return Result(
            status=status,
            function=self.route.name,
            function_version=self.route.version,
            event_id=inv.event.event_id,
            output=output,
            outputs=outputs,
            source=Source.of(inv.event),
            # every attempt ever, replays included
            attempts=len(history) + (1 if status == "ok" else 0),
            history=history,
            started_at=started_at,
            finished_at=now(),
            duration_ms=duration_ms,
            error=error,
        )

    async def _record(
        self, inv: Invocation, result: Result, *, held: ObjectInfo | None, placed: bool = False
    ) -> Standing:
        """Write the record over ``held`` (the record as last seen); where it stands.

        Never a plain PUT of ``result.json``: the check before the handler ran
        says nothing about what finished meanwhile, so the write is conditional
        on ``held`` and judged again if another record landed
        (:mod:`runtime.engine.record`).
        """
        try:
            body = dumps(result)
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            # Retrying cannot make a return value serializable: the code must change.
            raise Reject(f"the function's return value is not JSON-serializable: {exc}") from exc
        metadata = Seen.stamp(
            function=self.route.name,
            status=result.status,
            revision=result.source.revision,
            sequencer=result.source.sequencer,
        )
        if inv.job_id is not None:
            # A job's record is its own key, written for one event only: nothing races it.
            await self.storage.put(
                self.output_bucket,
                inv.record_key,
                body,
                content_type="application/json",
                metadata=metadata,
            )
            return Standing.NEWEST
        record = Record(
            storage=self.storage,
            bucket=self.output_bucket,
            key=inv.record_key,
            source_bucket=inv.event.bucket,
            source_key=inv.event.key,
        )
        return await record.write(body, metadata=metadata, held=held, placed=placed)

    async def _failed(self, inv: Invocation, exc: Exception) -> Outcome:
        """Decide, then publish the retry or the dead letter (and its record)."""
        error = ErrorInfo.of(exc)
        age = (now() - inv.first_seen).total_seconds()
        decision = retry.decide(self.route.retry, error=exc, attempt=inv.attempt, age=age)
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
                self.queues.retry(self.route.name, decision.tier_ms),
                dumps(nxt),
                # The event id in a header, not as message id: fan-out retries of one
                # event share a channel, and returns are matched by message id.
                headers={Header.ATTEMPT: nxt.attempt, Header.EVENT_ID: inv.event.event_id},
                expiration_ms=decision.delay_ms,
            )
            return Outcome(status=Status.RETRY, error=error, delay_ms=decision.delay_ms)
        return await self._dead_letter(inv, error, history, decision.reason)

    async def _park(self, inv: Invocation, exc: Exception) -> Outcome:
        """Send an invocation whose retry or dead letter could not be made to a delay tier.

        It counts as an attempt, so a failure that persists still reaches the
        policy's limits (attempts, age) and ends as a dead letter once S3 or
        the broker lets that be written.
        """
        error = ErrorInfo.of(exc)
        delay_ms = max(1, int(retry.backoff(self.route.retry, inv.attempt) * 1000))
        attempt = Attempt(
            attempt=inv.attempt,
            at=now(),
            error_type=error.type,
            message=f"could not record the outcome: {error.message}",
            fingerprint=error.fingerprint,
            delay_ms=delay_ms,
        )
        nxt = inv.model_copy(
            update={"attempt": inv.attempt + 1, "history": (*inv.history, attempt)}
        )
        await self.publisher.publish(
            self.queues.retry(self.route.name, retry.tier_for(delay_ms)),
            dumps(nxt),
            headers={Header.ATTEMPT: nxt.attempt, Header.EVENT_ID: inv.event.event_id},
            expiration_ms=delay_ms,
        )
        return Outcome(status=Status.RETRY, error=error, delay_ms=delay_ms)

    async def _dead_letter(
        self, inv: Invocation, error: ErrorInfo, history: tuple[Attempt, ...], reason: str
    ) -> Outcome:
        letter = DeadLetter(
            id=f"{inv.event.event_id}-{inv.attempt}-{inv.replays}",
            function=self.route.name,
            function_version=self.route.version,
            reason=reason,
            invocation=inv.model_copy(update={"history": history}),
            error=error,
        )
        result = self._result(
            inv,
            status="dead-lettered",
            history=history,
            started_at=history[-1].at,
            duration_ms=0,
            error=error,
        )
        held = None
        if inv.job_id is None:
            held = await self.storage.head(self.output_bucket, inv.record_key)
        # The record first: if it cannot be written, no letter exists yet, and the
        # retry that follows (see _park) cannot leave a second one behind.
        standing = await self._record(inv, result, held=held, placed=True)
        if standing is Standing.DONE:
            # Another copy of this very revision succeeded: nothing is left to fix.
            return Outcome(status=Status.DUPLICATE)
        if standing is not Standing.NEWEST:
            # An old revision's failure: the newer revision's record stays (or is on
            # its way), and no one needs to replay an event whose object moved on.
            return Outcome(status=Status.SUPERSEDED, error=error)
        await self.publisher.publish(
            self.queues.dead_letter(self.route.name),
            dumps(letter),
            headers={Header.KIND: letter.kind, Header.FINGERPRINT: error.fingerprint},
            message_id=letter.id,
        )
        return Outcome(
            status=Status.DEAD_LETTER,
            result=result,
            error=error,
            reason=reason,
            letter_id=letter.id,
        )
