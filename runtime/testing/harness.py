"""An in-memory harness to unit-test functions: no MinIO, no RabbitMQ.

::

    from runtime.testing import Harness
    from functions.csv_count import csv_row_count

    async def test_counts():
        h = Harness()
        result = await h.run(csv_row_count, b"a,b\\n1,2\\n", key="uploads/x.csv")
        assert result.output == {"rows": 1, "columns": ["a", "b"], "bytes": 8}

The harness drives the same :class:`~runtime.engine.worker.Worker` the runtime uses,
so idempotency, result records, retries and dead letters behave as deployed.
"""

from __future__ import annotations

import hashlib

from runtime.app.router import Handler, Route, Router
from runtime.core.events import PUT, ObjectEvent
from runtime.core.names import Queues
from runtime.core.records import Invocation, Result
from runtime.engine.observer import Observer
from runtime.engine.outcome import Outcome, Status
from runtime.engine.worker import Worker
from runtime.testing.memory import MemoryPublisher, MemoryStorage


class Harness:
    """Run a function on an in-memory object the way the runtime would."""

    def __init__(
        self,
        *,
        output_bucket: str = "job-outputs",
        versioned: frozenset[str] = frozenset(),
        observer: Observer | None = None,
    ):
        self.storage = MemoryStorage(versioned)
        self.publisher = MemoryPublisher()
        self.queues = Queues("test")
        self.output_bucket = output_bucket
        self.observer = observer

    def event(self, bucket: str, key: str, *, name: str = PUT) -> ObjectEvent:
        """An event for the object currently stored at ``bucket/key``."""
        obj = self.storage.objects[(bucket, key)]
        return ObjectEvent(
            event_id=hashlib.blake2b(
                f"{bucket}/{key}/{obj.etag}".encode(), digest_size=12
            ).hexdigest(),
            event_name=name,
            bucket=bucket,
            key=key,
            size=len(obj.data),
            etag=obj.etag,
            version_id=obj.version_id,
            metadata=obj.metadata,
            source="minio",
        )

    def worker(self, route: Route) -> Worker:
        """The runtime's worker for ``route``, on in-memory storage and publisher."""
        return Worker(
            route,
            storage=self.storage,
            publisher=self.publisher,
            queues=self.queues,
            output_bucket=self.output_bucket,
            chunk_size=64 * 1024,
            observer=self.observer,
        )

    async def deliver(self, route: Route, event: ObjectEvent, *, attempt: int = 1) -> Outcome:
        """Deliver one event to ``route`` as its queue would (failures are classified)."""
        return await self.worker(route).process(
            Invocation(function=route.name, event=event, attempt=attempt)
        )

    def key(self, prefix: str, name: str) -> str:
        """``prefix + name``: nothing else shares this in-memory store."""
        return prefix + name

    async def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes, as the function left them."""
        return self.storage.objects[(bucket, key)].data

    async def run(
        self,
        function: Handler | Route,
        data: bytes,
        *,
        key: str = "uploads/test.bin",
        bucket: str = "job-inputs",
    ) -> Result:
        """Store ``data``, run ``function`` on it, return the result record.

        The function's own exception propagates (wrapped failures would hide
        it), so a test can ``pytest.raises`` it.
        """
        route = function if isinstance(function, Route) else _route_of(function, bucket)
        self.storage.put_bytes(bucket, key, data)
        outcome = await self.worker(route).invoke(
            Invocation(function=route.name, event=self.event(bucket, key))
        )
        if outcome.status is not Status.OK or outcome.result is None:
            raise AssertionError(f"invocation ended as {outcome.status.value}")
        return outcome.result


def _route_of(handler: Handler, bucket: str) -> Route:
    router = Router()
    router.function(bucket=bucket)(handler)
    return router.routes[0]
