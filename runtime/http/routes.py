"""The endpoints an operator's tools call: ``/metrics``, ``/healthz``, ``/readyz``.

Every handler is ``async`` on purpose: FastAPI runs plain functions on a thread
pool, and ``/healthz`` must answer from the event loop it vouches for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from runtime.engine.health import Health
    from runtime.http.metrics import Metrics


def api(metrics: Metrics, health: Health) -> FastAPI:
    """The app serving ``metrics``' registry and ``health``'s verdict."""
    app = FastAPI(
        title="bucketfn runtime",
        summary="Metrics and health of one runtime process.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/metrics", response_class=Response)
    async def scrape(request: Request) -> Response:
        """Every metric, in the format the scraper asked for (Prometheus text or OpenMetrics)."""
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(metrics.registry), media_type=content_type)

    @app.get("/healthz")
    async def alive() -> dict[str, object]:
        """200 whenever the event loop runs this: the liveness probe."""
        return {"status": "ok", "event_loop_lag_seconds": metrics.loop_lag_seconds}

    @app.get("/readyz")
    async def ready() -> JSONResponse:
        """200 while consuming with RabbitMQ and S3 reachable; 503 naming what is missing."""
        missing = health.missing()
        if missing:
            return JSONResponse({"ready": False, "missing": missing}, status_code=503)
        return JSONResponse({"ready": True, "queues": list(health.queues)})

    return app
