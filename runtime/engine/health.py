"""Readiness as the engine sees it: connected to RabbitMQ, consuming, S3 answering.

The process updates one :class:`Health` as its connection comes and goes; the
HTTP surface (``/readyz``) only reads it, so the engine never knows who asks.
A probe of S3 runs beside the sessions because nothing else touches S3 while no
event arrives, and an idle runtime must still say whether it could work.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.core.seams import Storage

PROBE_PREFIX = ".bucketfn/readiness-probe"
"""A prefix nobody writes under, so listing it is cheap and answers nothing but "reachable"."""


@dataclass(slots=True, kw_only=True)
class Health:
    """What readiness needs, as last observed. Mutable on purpose: it is live state.

    ``storage_max_age`` bounds how old the last good S3 check may be: a probe
    that hangs must turn readiness off, not freeze it on.
    """

    broker: bool = False
    queues: tuple[str, ...] = ()  # consumed now (empty while not consuming)
    storage_checked: float | None = None  # time.monotonic() of the last good S3 check
    storage_error: str | None = None
    storage_max_age: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def missing(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        why: list[str] = []
        if not self.broker:
            why.append("rabbitmq: not connected")
        elif not self.queues:
            why.append("consumers: not started")
        if self.storage_error is not None:
            why.append(f"s3: {self.storage_error}")
        elif self.storage_checked is None:
            why.append("s3: not checked yet")
        elif self.clock() - self.storage_checked > self.storage_max_age:
            why.append(f"s3: no answer for over {self.storage_max_age:g} s")
        return why

    def consuming(self, queues: tuple[str, ...]) -> None:
        """Every consumer of this session has started."""
        self.broker = True
        self.queues = queues

    def idle(self, *, connected: bool) -> None:
        """Consumers stopped (stopping, or the connection is gone)."""
        self.broker = connected
        self.queues = ()

    def storage_ok(self) -> None:
        """S3 answered just now."""
        self.storage_checked = self.clock()
        self.storage_error = None

    def storage_failed(self, error: str) -> None:
        """S3 did not answer as it should."""
        self.storage_error = error


async def probe_storage(
    storage: Storage, bucket: str, health: Health, *, every: float = 5.0, within: float = 5.0
) -> None:
    """List an empty prefix of ``bucket`` every ``every`` seconds, forever.

    The output bucket is the one the runtime must always reach (every result
    record goes there). A list, not a HEAD: a HEAD's error has no body, so a
    missing bucket would read as a missing key, i.e. as healthy.
    """
    while True:
        try:
            async with asyncio.timeout(within):
                async for _ in storage.list(bucket, PROBE_PREFIX):
                    pass
        except TimeoutError:
            health.storage_failed(f"no answer within {within:g} s")
        except StorageError as exc:
            health.storage_failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - the probe must outlive any surprise, and say it
            health.storage_failed(f"{type(exc).__name__}: {exc}")
        else:
            health.storage_ok()
        await asyncio.sleep(every)
