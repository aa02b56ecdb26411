"""CPU-bound work off the event loop, a bounded number at a time per process.

Every function in a process shares one event loop with the dispatcher and the
AMQP heartbeats. A chunk of CSV scanning or a JSON canonicalization run on the
loop stalls all of them (measured: a 4-byte JSON waited 5–12 s behind larger
documents; small CSVs' p50 went from 17.6 to 637 ms beside one big scan). In a
thread the loop keeps running: the interpreter switches threads every few
milliseconds even while pure Python holds the GIL.

At most ``os.cpu_count()`` such jobs run at once; more would only queue on the
GIL while each holds a chunk of memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        for gone in [old for old in _slots if old.is_closed()]:
            del _slots[gone]
        _slots[loop] = asyncio.Semaphore(os.cpu_count() or 2)
    return _slots[loop]


async def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread, bounded per process; await its result."""
    async with _semaphore():
        return await asyncio.to_thread(fn, *args, **kwargs)
