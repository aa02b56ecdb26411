"""Every error of the jobs API as an RFC 9457 problem (``application/problem+json``).

One shape for every failure — FastAPI's validation errors, Starlette's 404 and
405, a refused job, an unreachable server — so a client has one thing to parse
and a person one place to read what to do. ``type`` is a relative URI naming the
problem (``/problems/<slug>``; ``about:blank`` for plain HTTP statuses), ``detail``
says what to change, and validation problems list every offending field in
``errors`` with a JSON pointer into the body (or the parameter's name), as RFC
9457's own example does.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from runtime.core.errors import BrokerError, StorageError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fastapi import FastAPI, Request

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5  # what a 503 asks a client to wait: about one reconnect attempt

log = structlog.get_logger("bucketfn.api")


class FieldError(BaseModel):
    """One invalid part of a request."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="What is wrong with it, and what is accepted.")
    pointer: str | None = Field(
        default=None, description="JSON pointer into the request body, e.g. `#/input/key`."
    )
    parameter: str | None = Field(
        default=None, description="The query, path or header parameter, when not the body."
    )


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(default="about:blank", description="Names the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What happened here, and what to do.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="Every invalid part of the request (validation problems)."
    )


class ProblemError(Exception):
    """Raise in a route to answer with a problem."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


def respond(
    request: Request,
    status: int,
    *,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem response for ``request``."""
    problem = Problem(
        type=f"/problems/{slug}" if slug else "about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors else None,
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _field_error(error: Mapping[str, Any]) -> FieldError:
    where, *path = error.get("loc", ()) or ("body",)
    message = str(error.get("msg", "invalid"))
    if where == "body":
        return FieldError(detail=message, pointer="#/" + "/".join(str(p) for p in path))
    return FieldError(detail=message, parameter=".".join(str(p) for p in path) or str(where))


def _summary(errors: Sequence[FieldError]) -> str:
    first = errors[0]
    where = first.parameter or (first.pointer or "#/").removeprefix("#/") or "the body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.detail}{more}"


def _not_json(request: Request) -> JSONResponse:
    # A syntax error is 400, not 422: nothing in the body could be read to validate.
    return respond(
        request,
        400,
        slug="invalid-json",
        title="The body is not JSON",
        detail="send a JSON object (UTF-8) with `Content-Type: application/json`",
    )


def install(app: FastAPI) -> None:
    """Answer every error ``app`` raises with a problem."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return respond(
            request,
            exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return _not_json(request)
        errors = [_field_error(e) for e in exc.errors()]
        return respond(
            request,
            422,
            slug="invalid-request",
            title="The request is not valid",
            detail=_summary(errors) if errors else None,
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's only 400: a body it could not decode
            return _not_json(request)
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
        return respond(request, exc.status_code, detail=detail, headers=exc.headers)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        log.warning("object store unavailable", path=request.url.path, error=str(exc))
        return respond(
            request,
            503,
            slug="storage-unavailable",
            title="The object store is not answering",
            detail=f"{exc}; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(BrokerError)
    async def _broker(request: Request, exc: BrokerError) -> JSONResponse:
        log.warning("broker unavailable", path=request.url.path, error=str(exc))
        return respond(
            request,
            503,
            slug="broker-unavailable",
            title="RabbitMQ is not reachable",
            detail=f"{exc}; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, exc_info=exc)
        return respond(
            request,
            500,
            slug="internal",
            detail="the API failed on this request; its log has the traceback",
        )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, all answered with :class:`Problem`."""
    return {status: {"model": Problem, "description": DESCRIPTIONS[status]} for status in statuses}


DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No bearer token, or not the right one.",
    404: "No such resource.",
    413: "The request body is too large.",
    422: "The request is not valid, or asks for what cannot be done; `detail` says why.",
    503: "The object store or RabbitMQ is not reachable; retry after `Retry-After` seconds.",
}


def media_types(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare every problem response as ``application/problem+json`` in ``openapi``.

    FastAPI files every model response under ``application/json``; a client
    (and schemathesis) must see the media type the API really sends.
    """
    ref = "#/components/schemas/Problem"
    for operation in (op for path in openapi.get("paths", {}).values() for op in path.values()):
        for response in operation.get("responses", {}).values():
            content = response.get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if schema.get("$ref") == ref:
                content[PROBLEM_JSON] = content.pop("application/json")
    return openapi
