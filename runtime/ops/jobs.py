"""Jobs: run a function on an object that already exists, when asked to.

A job is an invocation like any bucket event's: it goes through the function's
queue, retry tiers and dead-letter queue, and ``bucketfn dlq replay`` replays it.
Only its record differs: ``job-outputs/jobs/<job_id>/result.json``
(:func:`~runtime.core.names.job_result_key`), so two jobs on one object never
share a record and no bucket event overwrites one.

Creating a job checks at once what can be known at once — the function exists,
its route takes that object, the object exists — so a bad request fails at the
door with its reason instead of in a dead-letter queue minutes later.

The invocation is published (confirmed) *before* the job's request is stored
beside its record, so a stored job is always a queued one; a crash between the
two leaves a job that runs and is found by its record alone.

Idempotency keys are not stored anywhere: the job id is derived from the key
(:func:`job_id_for`). The id is then the index — no second object to keep in
step with the job, no extra round trip, nothing to clean up. The price: two
concurrent first requests with one key both publish. Both name the same job, so
they store the same request and write the same record (the worker skips the
later delivery once the earlier one's record exists), and the result is one job.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import ValidationError

from runtime.core import names
from runtime.core.errors import JobRefused, ObjectGone
from runtime.core.events import PUT, ObjectEvent
from runtime.core.names import Header, Meta
from runtime.core.records import ErrorInfo, Invocation, Model, Result, dumps, fingerprint, now

if TYPE_CHECKING:
    from runtime.app.router import App, Route
    from runtime.core.seams import ObjectInfo, Publisher, Storage

Status = Literal["queued", "running", "succeeded", "failed"]
M = TypeVar("M", bound=Model)


class JobSpec(Model):
    """``jobs/<job_id>/job.json``: what was asked, and the event the job runs on."""

    job_id: str
    function: str
    event: ObjectEvent
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A job as its owner sees it: the request, the status, and the record once there."""

    job_id: str
    function: str
    event: ObjectEvent
    status: Status
    created_at: datetime | None
    record: Result | None = None
    error: ErrorInfo | None = None

    @property
    def attempts(self) -> int:
        """Attempts made so far (0 while queued: nothing is recorded before the end)."""
        return self.record.attempts if self.record else 0


def job_id_for(idempotency_key: str | None, *, scope: str) -> str:
    """A fresh job id, or the one an idempotency key always names within ``scope``.

    ``scope`` (the deployment's queue prefix) keeps deployments that share an
    output bucket from answering each other's keys.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    seed = f"bucketfn-job\x00{scope}\x00{idempotency_key}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def takes(route: Route) -> str:
    """What ``route`` runs on, for a refusal a person can act on."""
    what = f"objects in {route.bucket}/{route.prefix}"
    if route.suffixes:
        what += " ending in " + " or ".join(route.suffixes)
    return what


class Jobs:
    """Create and read the jobs of one app."""

    def __init__(
        self,
        app: App,
        *,
        storage: Storage,
        publisher: Publisher,
        queue_prefix: str,
        output_bucket: str,
    ) -> None:
        self.app = app
        self.storage = storage
        self.publisher = publisher
        self.queues = names.Queues(queue_prefix)
        self.output_bucket = output_bucket

    async def create(
        self, function: str, bucket: str, key: str, *, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Queue ``function`` on ``bucket/key``; returns the job and whether it is new.

        Raises :class:`JobRefused` for what no retry could fix.
        """
        route = self.app.by_name.get(function)
        if route is None:
            known = ", ".join(sorted(self.app.by_name)) or "none"
            raise JobRefused("unknown-function", f"no function {function!r} (known: {known})")
        job_id = job_id_for(idempotency_key, scope=self.queues.prefix)
        if idempotency_key is not None and (existing := await self._spec(job_id)) is not None:
            if (existing.function, existing.event.bucket, existing.event.key) != (
                function,
                bucket,
                key,
            ):
                raise JobRefused(
                    "idempotency-conflict",
                    f"idempotency key already used for job {job_id} "
                    f"({existing.function} on {existing.event.bucket}/{existing.event.key}); "
                    "use a new key for a different request",
                )
            job = await self.get(job_id)
            if job is not None:
                return job, False
        if not route.matches(_event(job_id, bucket, key)):
            raise JobRefused(
                "input-refused", f"{function} runs on {takes(route)}, not on {bucket}/{key}"
            )
        info = await self.storage.head(bucket, key)
        if info is None:
            raise JobRefused(
                "input-missing", f"no object {bucket}/{key}: upload it first (POST /v1/uploads)"
            )
        event = _event(job_id, bucket, key, info)
        if not route.matches(event):  # only the loop guard is left to refuse it here
            raise JobRefused(
                "input-refused",
                f"{bucket}/{key} was written by {event.metadata.get(Meta.FUNCTION)}; "
                "a function never runs on its own output",
            )
        spec = JobSpec(job_id=job_id, function=function, event=event, created_at=now())
        await self.publisher.publish(
            self.queues.function(function),
            dumps(Invocation(function=function, event=event, job_id=job_id)),
            headers={Header.EVENT_ID: event.event_id},
            message_id=event.event_id,
        )
        await self.storage.put(
            self.output_bucket,
            names.job_spec_key(job_id),
            dumps(spec),
            content_type="application/json",
        )
        return Job(
            job_id=job_id,
            function=function,
            event=event,
            status="queued",
            created_at=spec.created_at,
        ), True

    async def get(self, job_id: str) -> Job | None:
        """The job ``job_id`` as it stands, or None if there is none."""
        if not names.valid_job_id(job_id):
            return None
        spec, record = await asyncio.gather(self._spec(job_id), self._record(job_id))
        if record is not None:
            return Job(
                job_id=job_id,
                function=record.function,
                event=spec.event if spec else _recorded_event(job_id, record),
                status="succeeded" if record.status == "ok" else "failed",
                created_at=spec.created_at if spec else None,
                record=record,
                error=record.error,
            )
        if spec is None:
            return None
        return Job(
            job_id=job_id,
            function=spec.function,
            event=spec.event,
            status="failed" if (gone := await self._overtaken(spec.event)) else "queued",
            created_at=spec.created_at,
            error=gone,
        )

    async def _overtaken(self, event: ObjectEvent) -> ErrorInfo | None:
        """Why a queued job will never run, if its input changed or went since it was made.

        The worker drops such an invocation without a record (it runs on the
        revision it names, or not at all), so the job would otherwise read as
        queued for ever.
        """
        info = await self.storage.head(event.bucket, event.key)
        if info is not None and event.describes(info.version_id, info.etag):
            return None
        kind, what = (
            ("ObjectGone", "was deleted") if info is None else ("Superseded", "was overwritten")
        )
        return ErrorInfo(
            type=f"runtime.{kind}",
            message=(
                f"the input {event.bucket}/{event.key} {what} before the job ran; "
                "create a new job to run on what is there now"
            ),
            fingerprint=fingerprint("job", kind),
        )

    async def _spec(self, job_id: str) -> JobSpec | None:
        body = await self._read(names.job_spec_key(job_id))
        return None if body is None else _parse(JobSpec, body)

    async def _record(self, job_id: str) -> Result | None:
        body = await self._read(names.job_result_key(job_id))
        return None if body is None else _parse(Result, body)

    async def _read(self, key: str) -> bytes | None:
        try:
            return b"".join([c async for c in self.storage.stream(self.output_bucket, key)])
        except ObjectGone:
            return None


def _parse(model: type[M], body: bytes) -> M | None:
    # A record this version cannot read (hand-edited, truncated) reads as absent
    # rather than failing every look-up of the job.
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return None


def _event(job_id: str, bucket: str, key: str, info: ObjectInfo | None = None) -> ObjectEvent:
    """The event a job runs on: the object as a HEAD found it, with an id of the job's own.

    Without a sequencer the worker checks the object is still this revision
    before running the handler, as for any event found by listing.
    """
    extra: dict[str, Any] = {}
    if info is not None:
        extra = {
            "size": info.size,
            "etag": info.etag,
            "version_id": info.version_id,
            "metadata": {k.lower(): v for k, v in (info.metadata or {}).items()},
        }
    return ObjectEvent(
        event_id=job_id,
        event_name=PUT,
        bucket=bucket,
        key=key,
        event_time=now(),
        **extra,
    )


def _recorded_event(job_id: str, record: Result) -> ObjectEvent:
    src = record.source
    return ObjectEvent(
        event_id=job_id,
        event_name=src.event_name,
        bucket=src.bucket,
        key=src.key,
        size=src.size,
        etag=src.etag,
        version_id=src.version_id,
        event_time=src.event_time,
    )
