"""``GET /v1/functions``: what a job may name, what triggers each function, and its queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from runtime.http.jobs.services import Services


class Function(BaseModel):
    """One deployed function (as ``bucketfn routes --json`` shows it)."""

    name: str
    bucket: str = Field(description="The bucket whose events run it.")
    prefix: str = Field(description="Keys it runs on start with this.")
    suffixes: list[str] = Field(description="…and end with one of these (any, when empty).")
    events: list[str] = Field(description="The S3 event names it runs on.")
    queue: str = Field(description="Its work queue in RabbitMQ.")
    version: str = Field(description="Its code's version (a hash of its source by default).")


class Functions(BaseModel):
    """Every deployed function."""

    functions: list[Function]


def router(services: Services) -> APIRouter:
    """The functions route on ``services``."""
    routes = APIRouter(tags=["functions"])
    queues = services.settings.queues
    listing = Functions(
        functions=[
            Function(
                name=r.name,
                bucket=r.bucket,
                prefix=r.prefix,
                suffixes=list(r.suffixes),
                events=sorted(r.events),
                queue=queues.function(r.name),
                version=r.version,
            )
            for r in services.app.routes
        ]
    )

    @routes.get("/v1/functions", response_model=Functions, summary="List the functions")
    async def list_functions() -> Functions:
        """Every function of the deployed app: its trigger, queue and version."""
        return listing

    return routes
