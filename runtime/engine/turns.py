"""One invocation at a time per result record, within a process.

Two invocations of one object can be in flight in one process at once: the
sweep heals an object whose own event is still queued behind a backlog, a
retry overtakes a slow first run, a replay meets the live event. Each checks
the record before running and both find none, so both run and both write —
a second version of the record and of every promotion, with other bytes.
Taking turns per record key makes the second one look after the first has
written: it finds the record for its revision and skips, or sees a newer one.

Only the same key waits; different keys run as concurrently as before. The
lock table holds only keys with an invocation in flight or waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Turns:
    """Per-key mutual exclusion for the invocations of one worker."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def take(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s turn for the body of the ``async with``."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys with an invocation in flight or waiting (bounded by the prefetch)."""
        return len(self._locks)
