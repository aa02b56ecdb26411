"""The jobs API as one FastAPI application: routes, auth, problems, and its OpenAPI document.

Built from :class:`~runtime.http.jobs.services.Services`, so the same
application runs on S3 and RabbitMQ (``bucketfn api``) and on the in-memory
harness (the unit tests). Swagger UI and ReDoc are off: they load their scripts
from a CDN, which a loopback-only API should not make its users' browsers do;
``/openapi.json`` is the contract.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI

from runtime.http import console
from runtime.http.jobs import deadletters, functions, health, jobs, problems, uploads
from runtime.http.jobs.auth import guard
from runtime.http.jobs.limits import BodyLimit

if TYPE_CHECKING:
    from runtime.http.jobs.services import Services

DESCRIPTION = """\
Run bucketfn's functions on objects through HTTP: presign an upload
(`POST /v1/uploads`), send the file straight to the store, create a job
(`POST /v1/jobs`), poll it (`GET /v1/jobs/{job_id}`) and download its result
through a presigned URL. Every route but `/healthz` and `/readyz` needs
`Authorization: Bearer <token>`. Errors are RFC 9457 problem details
(`application/problem+json`).
"""


def _version() -> str:
    try:
        return version("bucketfn")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "0+unknown"


class _API(FastAPI):
    """FastAPI, with the OpenAPI document adjusted once to what the API really does."""

    function_names: tuple[str, ...] = ()

    def openapi(self) -> dict[str, Any]:
        """The document, with problem media types and the deployed function names."""
        if self.openapi_schema is None:
            schema = problems.media_types(super().openapi())
            request = schema["components"]["schemas"]["JobRequest"]
            request["properties"]["function"]["enum"] = list(self.function_names)
            self.openapi_schema = schema
        return self.openapi_schema


def create_app(services: Services, *, token: str | None) -> FastAPI:
    """The jobs API on ``services``; ``token`` None accepts every request (loopback only)."""
    app = _API(
        title="bucketfn jobs API",
        version=_version(),
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    app.function_names = tuple(sorted(services.app.by_name))
    problems.install(app)
    protected = [Depends(guard(token))]
    for build in (uploads.router, jobs.router, functions.router, deadletters.router):
        app.include_router(
            build(services), dependencies=protected, responses=problems.documented(401)
        )
    app.include_router(health.router(services))
    # The console's page at `/`; its data routes need the same token as the API's.
    console.mount(app, services, protect=protected, token_required=token is not None)
    app.add_middleware(BodyLimit)
    return app
