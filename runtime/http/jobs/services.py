"""What the API's routes work with, gathered once so tests can swap each piece.

The server (``runtime.http.jobs.server``) builds it on S3 and RabbitMQ; the unit
tests build it on the in-memory harness, and the routes cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.ops.jobs import Jobs

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.adapters.amqp import Broker
    from runtime.app.router import App
    from runtime.core.seams import Publisher, Storage
    from runtime.core.settings import Settings
    from runtime.http.jobs.presign import Presigner


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """The deployment's settings and app, and the servers behind them."""

    settings: Settings
    app: App
    storage: Storage
    publisher: Publisher
    presigner: Presigner
    broker: Callable[[], Broker]  # the connected broker, or BrokerError (dead letters)
    missing: Callable[[], list[str]]  # why the API is not ready; empty when it is

    @property
    def jobs(self) -> Jobs:
        """The app's jobs on these servers."""
        return Jobs(
            self.app,
            storage=self.storage,
            publisher=self.publisher,
            queue_prefix=self.settings.queue_prefix,
            output_bucket=self.settings.output_bucket,
        )
