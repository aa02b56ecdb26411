"""``POST /v1/jobs`` and ``GET /v1/jobs/{job_id}``: run a function on an object, read how it went.

The work is :mod:`runtime.ops.jobs`; this module is the HTTP contract: the
request and response shapes, status codes, and presigned links to the record
and to every file the function wrote.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.core import names
from runtime.core.errors import JobRefused
from runtime.core.records import now
from runtime.http.jobs import keys
from runtime.http.jobs.problems import ProblemError, documented
from runtime.http.jobs.uploads import MAX_EXPIRY_S
from runtime.ops.jobs import Status

if TYPE_CHECKING:
    from runtime.http.jobs.services import Services
    from runtime.ops.jobs import Job

_REFUSALS = {
    "unknown-function": "No such function",
    "input-refused": "The function does not take this input",
    "input-missing": "The input object does not exist",
    "idempotency-conflict": "The idempotency key was used for another request",
}


class InputRef(BaseModel):
    """An object in the store."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bucket: str = Field(pattern=keys.BUCKET_PATTERN, examples=["job-inputs"])
    key: str = Field(examples=["uploads/sales-2026.csv"])

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        return keys.object_key(key)


class JobRequest(BaseModel):
    """Which function to run on which object."""

    model_config = ConfigDict(extra="forbid", strict=True)

    function: str = Field(description="A function of `GET /v1/functions`.")
    input: InputRef
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Sending the same key again returns the same job instead of a new one.",
    )

    @field_validator("idempotency_key")
    @classmethod
    def _encodable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text (no lone surrogates)") from None
        return value


class JobAccepted(BaseModel):
    """A job that exists: poll ``status_url``."""

    job_id: str
    status: Status
    status_url: str


class JobInput(BaseModel):
    """The object a job runs on, as it was when the job was created."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    size: int | None


class JobError(BaseModel):
    """Why a job failed."""

    type: str = Field(description="The error's type, e.g. `runtime.InputError`.")
    message: str
    where: str | None = Field(description="Where in the input, when known (a line, a byte).")
    fingerprint: str = Field(description="Groups failures of one cause (as in the DLQ).")


class Output(BaseModel):
    """A file the function wrote."""

    location: str = Field(description="`s3://bucket/key`.")
    url: str = Field(description="A presigned GET URL.")


class JobState(BaseModel):
    """A job: what was asked, how it stands, and where its results are."""

    job_id: str
    function: str
    input: JobInput
    status: Status = Field(
        description="`queued` until the record exists (waiting, running or between retries), "
        "then `succeeded` or `failed`."
    )
    created_at: datetime | None
    finished_at: datetime | None
    attempts: int
    output: Any = Field(default=None, description="The function's return value.")
    error: JobError | None
    result_url: str | None = Field(description="A presigned GET URL of the job's result.json.")
    outputs: list[Output]
    urls_expire_at: datetime | None


JOB_ID = Annotated[
    str, Path(pattern=names.JOB_ID_PATTERN, description="32 hex digits, from `POST /v1/jobs`.")
]
EXPIRES_IN = Annotated[
    int, Query(ge=1, le=MAX_EXPIRY_S, description="Seconds the returned URLs stay valid.")
]


def router(services: Services) -> APIRouter:
    """The jobs routes on ``services``."""
    routes = APIRouter(tags=["jobs"])

    @routes.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobAccepted,
        responses={
            202: {
                "headers": {
                    "Location": {"description": "The job's URL.", "schema": {"type": "string"}}
                },
                "links": {
                    "GetJob": {
                        "operationId": "get_job",
                        "parameters": {"job_id": "$response.body#/job_id"},
                    }
                },
            },
            **documented(400, 413, 422, 503),
        },
        summary="Create a job",
    )
    async def create_job(body: JobRequest, request: Request, response: Response) -> JobAccepted:
        """Queue `function` on the existing object `input`.

        Refused at once with 422 (and the reason) when the function is unknown,
        does not take that object, or the object does not exist. The same
        `idempotency_key` returns the same job; with another request, 422.
        """
        try:
            job, _ = await services.jobs.create(
                body.function,
                body.input.bucket,
                body.input.key,
                idempotency_key=body.idempotency_key,
            )
        except JobRefused as exc:
            raise ProblemError(422, exc.kind, _REFUSALS[exc.kind], exc.reason) from None
        url = str(request.url_for("get_job", job_id=job.job_id))
        response.headers["Location"] = url
        return JobAccepted(job_id=job.job_id, status=job.status, status_url=url)

    @routes.get(
        "/v1/jobs/{job_id}",
        response_model=JobState,
        responses=documented(404, 422, 503),
        summary="Read a job",
        operation_id="get_job",
    )
    async def get_job(job_id: JOB_ID, expires_in: EXPIRES_IN = 900) -> JobState:
        """The job's status, its output or error, and presigned links to its results."""
        job = await services.jobs.get(job_id)
        if job is None:
            raise ProblemError(404, "unknown-job", "No such job", f"no job {job_id}")
        return await _state(services, job, expires_in)

    return routes


async def _state(services: Services, job: Job, expires_in: int) -> JobState:
    record, ev, presign = job.record, job.event, services.presigner
    result_url: str | None = None
    outputs: list[Output] = []
    if record is not None:
        result_url = await presign.get(
            services.settings.output_bucket,
            names.job_result_key(job.job_id),
            expires_in=expires_in,
        )
        for location in record.outputs:
            bucket, _, key = location.removeprefix("s3://").partition("/")
            url = await presign.get(bucket, key, expires_in=expires_in)
            outputs.append(Output(location=location, url=url))
    error = job.error
    return JobState(
        job_id=job.job_id,
        function=job.function,
        input=JobInput(
            bucket=ev.bucket, key=ev.key, etag=ev.etag, version_id=ev.version_id, size=ev.size
        ),
        status=job.status,
        created_at=job.created_at,
        finished_at=record.finished_at if record else None,
        attempts=job.attempts,
        output=record.output if record else None,
        error=JobError(
            type=error.type, message=error.message, where=error.where, fingerprint=error.fingerprint
        )
        if error
        else None,
        result_url=result_url,
        outputs=outputs,
        urls_expire_at=now() + timedelta(seconds=expires_in) if record else None,
    )
