"""``bucketfn api``'s process: the jobs API on uvicorn, S3 and RabbitMQ behind it.

It listens at once and connects in the background: ``/readyz`` says "not yet"
rather than the port refusing connections, and a broker that goes away is
reconnected without a restart. Signals are the caller's (``stop``), as in the
runtime's own HTTP surface, so a SIGTERM drains requests in flight and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
import uvicorn

from runtime.adapters.s3 import S3Storage
from runtime.core.errors import ConfigError
from runtime.engine.health import Health, probe_storage
from runtime.http.jobs.app import create_app
from runtime.http.jobs.auth import check_exposure
from runtime.http.jobs.link import Link
from runtime.http.jobs.presign import Presigner
from runtime.http.jobs.services import Services

if TYPE_CHECKING:
    from runtime.app.router import App
    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: ``serve``'s caller owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the caller."""
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind now, so a taken port is a ConfigError at start, not a log line later."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} (BUCKETFN_API_ADDRESS): {exc}") from exc


def _missing(link: Link, health: Health) -> list[str]:
    why = [] if link.connected else ["rabbitmq: not connected"]
    # Health speaks for a runtime too (consumers); of its verdict the API needs only S3's.
    return why + [m for m in health.missing() if m.startswith("s3:")]


async def serve(app: App, settings: Settings, stop: asyncio.Event, *, token: str | None) -> None:
    """Serve the jobs API on ``settings.api_address`` until ``stop`` is set."""
    host, wanted = settings.api_bind
    check_exposure(host, token)
    sock = listen(host, wanted)
    port: int = sock.getsockname()[1]
    link, health = Link(settings), Health()
    async with S3Storage.connect(settings) as storage:
        services = Services(
            settings=settings,
            app=app,
            storage=storage,
            publisher=link,
            presigner=Presigner(storage.client),
            broker=link.broker,
            missing=lambda: _missing(link, health),
        )
        server = _Server(
            uvicorn.Config(
                create_app(services, token=token),
                log_level="warning",
                lifespan="off",
                access_log=False,
                log_config=None,  # the process's logging, as the CLI configured it
                timeout_graceful_shutdown=10,
            )
        )
        background = [
            asyncio.create_task(link.run()),
            asyncio.create_task(probe_storage(storage, settings.output_bucket, health)),
        ]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        log.info(
            "jobs API listening",
            host=host,
            port=port,
            auth="bearer token" if token else "none (loopback only)",
        )
        if token is None:
            log.warning("no API token: every request is accepted; set BUCKETFN_API_TOKEN")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            sock.close()
            log.info("jobs API stopped")
