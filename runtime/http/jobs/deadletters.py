"""``GET /v1/dead-letters``, ``POST /v1/dead-letters/replay``: ``bucketfn dlq ls`` and ``replay``.

Same filters, same selection rule (name entries by id, or take ``all`` the
filters select), same guarantees: :class:`~runtime.ops.deadletters.DeadLetters`
does the work. RabbitMQ cannot read a queue without taking its messages, so
dead-letter requests run one at a time here: two at once would each see only
what the other was not holding.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.http.jobs.problems import documented
from runtime.ops.deadletters import DeadLetters, Entry, parse_duration, select

if TYPE_CHECKING:
    from datetime import timedelta

    from runtime.http.jobs.services import Services

FINGERPRINT_PATTERN = r"^[0-9a-f]{1,12}$"
DURATION_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,3})?[smhd]$"
MAX_LISTED = 1000


class DeadLetterEntry(BaseModel):
    """One dead-lettered message, as ``bucketfn dlq ls --json`` shows it."""

    id: str = Field(description="What `ids` of a replay takes.")
    function: str | None = Field(description="None for the ingress queue's entries.")
    kind: str = Field(description="`dead-letter`, `delivery-limit`, `undecodable` or `ingress`.")
    reason: str
    error_type: str | None
    error: str | None
    fingerprint: str = Field(description="Entries of one cause share it.")
    attempts: int
    at: datetime | None = Field(description="When it was dead-lettered.")
    bucket: str | None
    key: str | None
    job_id: str | None = Field(description="The job it belongs to, for a job's invocation.")

    @classmethod
    def of(cls, entry: Entry) -> Self:
        """The API's view of one entry."""
        inv = entry.invocation
        return cls(**entry.summary(), job_id=inv.job_id if inv else None)


class DeadLetterList(BaseModel):
    """The entries the filters select, oldest first."""

    total: int = Field(description="How many entries the filters select.")
    entries: list[DeadLetterEntry] = Field(description="The first `limit` of them.")


class ReplayRequest(BaseModel):
    """Which entries to send back to their function: ``ids``, or ``all`` the filters select.

    One of the two is required, so that replaying everything is never an accident
    (the CLI's rule); with both, the ids are narrowed by the filters like the rest.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # 0 is not false: the types the schema says
        json_schema_extra={
            "anyOf": [
                {"properties": {"ids": {"minItems": 1}}, "required": ["ids"]},
                {"properties": {"all": {"const": True}}, "required": ["all"]},
            ]
        },
    )

    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_LISTED, description="Entry ids to replay."
    )
    all: bool = Field(default=False, description="Replay every entry the filters select.")
    function: str | None = Field(default=None, max_length=63)
    fingerprint: str | None = Field(default=None, pattern=FINGERPRINT_PATTERN)
    dry_run: bool = Field(default=False, description="Say what would be replayed; change nothing.")

    @model_validator(mode="after")
    def _selection(self) -> Self:
        if not self.ids and not self.all:
            raise ValueError("name entries in `ids`, or select them with `all: true`")
        return self


class ReplayReport(BaseModel):
    """What a replay did (or, with ``dry_run``, would do)."""

    replayed: list[str]
    skipped: dict[str, str] = Field(description="Entries that cannot be replayed, and why.")
    dry_run: bool


def _since(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "since"), "msg": str(exc), "type": "value_error"}]
        ) from None


def router(services: Services) -> APIRouter:
    """The dead-letter routes on ``services``."""
    routes = APIRouter(tags=["dead letters"])
    one_at_a_time = asyncio.Lock()

    def store() -> DeadLetters:
        return DeadLetters(services.broker(), services.settings, services.app)

    @routes.get(
        "/v1/dead-letters",
        response_model=DeadLetterList,
        responses=documented(422, 503),
        summary="List dead letters",
    )
    async def list_dead_letters(
        function: Annotated[str | None, Query(max_length=63)] = None,
        error: Annotated[
            str | None, Query(max_length=200, description="Text in the error type or message.")
        ] = None,
        since: Annotated[
            str | None, Query(pattern=DURATION_PATTERN, description="e.g. `90s`, `15m`, `2h`.")
        ] = None,
        fingerprint: Annotated[str | None, Query(pattern=FINGERPRINT_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
    ) -> DeadLetterList:
        """Dead-lettered entries of every function and the ingress, oldest first."""
        which = select(function=function, error=error, fingerprint=fingerprint, since=_since(since))
        async with one_at_a_time:
            entries = await store().entries(which)
        return DeadLetterList(
            total=len(entries), entries=[DeadLetterEntry.of(e) for e in entries[:limit]]
        )

    @routes.post(
        "/v1/dead-letters/replay",
        response_model=ReplayReport,
        responses=documented(400, 413, 422, 503),
        summary="Replay dead letters",
    )
    async def replay_dead_letters(request: ReplayRequest) -> ReplayReport:
        """Send entries back to their function with a fresh retry budget, history kept.

        Each is published with a confirm before its dead-letter copy is removed.
        """
        which = select(request.ids, function=request.function, fingerprint=request.fingerprint)
        async with one_at_a_time:
            report = await store().replay(which, dry_run=request.dry_run)
        return ReplayReport(
            replayed=report.replayed, skipped=report.skipped, dry_run=request.dry_run
        )

    return routes
