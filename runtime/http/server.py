"""The HTTP surface of one runtime process, on the runtime's own event loop.

uvicorn runs as a task beside the engine, not in a thread: ``/healthz`` then
proves the loop that runs the functions is responsive, and a scrape reads the
metrics without locks across threads. It listens from before the first
connection until after the last drain, so ``/readyz`` can say "not yet" and
"stopping" rather than refuse connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import structlog
import uvicorn

from runtime.core.errors import ConfigError
from runtime.http.routes import api

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from runtime.core.settings import Settings
    from runtime.engine.health import Health
    from runtime.http.metrics import Metrics
    from runtime.http.queues import QueueStats

log = structlog.get_logger("bucketfn.http")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the runtime owns SIGTERM.

    uvicorn's would replace the runtime's, shut the endpoints down at once and
    re-raise the signal afterwards; the endpoints must outlive the drain.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the runtime."""
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind now, so a taken port is a ConfigError at start, not a log line in a task."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} (BUCKETFN_METRICS_ADDRESS): {exc}"
        ) from exc


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    metrics: Metrics,
    health: Health,
    *,
    queues: QueueStats | None = None,
) -> AsyncIterator[int]:
    """Serve the endpoints (and feed the loop-lag and queue metrics) while the block runs.

    Yields the port listened on (the chosen one when the setting's port is 0).
    """
    host, wanted = settings.metrics_bind
    sock = listen(host, wanted)
    port: int = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            api(metrics, health),
            log_level="warning",
            lifespan="off",
            access_log=False,  # a line per scrape and probe buries the runtime's own
            log_config=None,  # leave the process's logging as the CLI configured it
            timeout_graceful_shutdown=5,
        )
    )
    jobs: list[Coroutine[object, object, None]] = [metrics.watch_loop()]
    if queues is not None:
        jobs.append(queues.watch())
    tasks = [asyncio.create_task(job) for job in jobs]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("metrics and health endpoints listening", host=host, port=port)
    try:
        yield port
    finally:
        for task in tasks:
            task.cancel()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
