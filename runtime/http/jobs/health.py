"""``/healthz`` and ``/readyz`` of the jobs API; no token needed (probes have none).

Liveness is the event loop answering. Readiness is what a job needs: RabbitMQ
connected (to publish it) and S3 answering (to check its input and read its
record); a load balancer then stops sending requests that could only get 503s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from runtime.http.jobs.services import Services


class Alive(BaseModel):
    """The process is serving."""

    status: str = "ok"


class Readiness(BaseModel):
    """Whether the API can serve jobs now, and if not, why."""

    ready: bool
    missing: list[str] = Field(description="What is not available (empty when ready).")


def router(services: Services) -> APIRouter:
    """The probes on ``services``."""
    routes = APIRouter(tags=["health"])

    @routes.get("/healthz", response_model=Alive, summary="Liveness")
    async def healthz() -> Alive:
        """200 whenever the API's event loop answers (``async`` on purpose: on the loop)."""
        return Alive()

    @routes.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready; `missing` says why."}},
        summary="Readiness",
    )
    async def readyz() -> JSONResponse:
        """200 with RabbitMQ connected and S3 answering; 503 naming what is missing."""
        missing = services.missing()
        body = Readiness(ready=not missing, missing=missing).model_dump()
        return JSONResponse(body, status_code=503 if missing else 200)

    return routes
