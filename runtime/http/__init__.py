"""The runtime's HTTP surface: Prometheus metrics, liveness and readiness.

``bucketfn run`` serves ``/metrics``, ``/healthz`` and ``/readyz`` on
``BUCKETFN_METRICS_ADDRESS``. Metrics are an observer of the engine
(:mod:`runtime.engine.observer`); readiness reads the engine's
:class:`~runtime.engine.health.Health`. The engine never imports this package.
"""

from runtime.http.metrics import Metrics
from runtime.http.queues import QueueStats
from runtime.http.routes import api
from runtime.http.server import running

__all__ = ["Metrics", "QueueStats", "api", "running"]
