"""Router: CPU time per routed event, and events/s, draining a queued backlog.

A backlog of MinIO-shaped events is queued on the ingress first; then the
runtime (dispatcher only, no workers) drains it into one function queue.
The figure that matters is CPU per event — this process's CPU time over the
drain divided by the events — because the machine is shared and throughput
moves with everyone else's load; CPU per event hardly does. The load
generator is idle during the drain (it only polls a queue depth), so the
process's CPU is the dispatcher's.

Run alone: ``python -m tests.bench.router [N] [--profile FILE]`` (cProfile of
the drain, e.g. for ``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import uvloop

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core import logs
from runtime.core.settings import Settings, load
from runtime.engine.process import serve

TARGET_CPU_US = 120.0
"""Issue 13's target: CPU per routed event."""


def _minio_event(key: str) -> bytes:
    return orjson.dumps(
        {
            "EventName": "s3:ObjectCreated:Put",
            "Key": f"job-inputs/{key}",
            "Records": [
                {
                    "eventSource": "minio:s3",
                    "eventName": "s3:ObjectCreated:Put",
                    "eventTime": datetime.now().isoformat(),
                    "s3": {
                        "bucket": {"name": "job-inputs"},
                        "object": {"key": key, "size": 13, "eTag": uuid.uuid4().hex},
                    },
                }
            ],
        }
    )


sink = Router()


@sink.function(bucket="job-inputs", prefix="routerbench/")
async def routerbench(event: ObjectEvent, ctx: Context) -> None:
    """Never runs: the router benchmark only fills this function's queue."""


async def _fill(channel: aio_pika.abc.AbstractChannel, queue: str, n: int) -> None:
    """Queue ``n`` events on ``queue``, confirmed, 500 in flight at a time."""
    window = 500
    for start in range(0, n, window):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(_minio_event(f"routerbench/{i}.csv")), routing_key=queue
                )
                for i in range(start, min(n, start + window))
            )
        )


async def _depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def drain(
    n: int, settings: Settings, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    """Queue ``n`` events, let the dispatcher route them all; its CPU and rate."""
    settings = settings.model_copy(update={"queue_prefix": f"bench-{uuid.uuid4().hex[:6]}"})
    app = App([sink])
    q = settings.queues
    async with Broker.connect(settings) as broker:
        await broker.declare(settings, app)
        conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            try:
                await _fill(ch, q.ingress, n)
                stop, ready = asyncio.Event(), asyncio.Event()
                task = asyncio.create_task(serve(app, settings, stop, functions=set(), ready=ready))
                await ready.wait()
                load_avg = os.getloadavg()[0]
                cpu0, t0 = time.process_time(), time.perf_counter()
                use0 = resource.getrusage(resource.RUSAGE_SELF)
                if profile is not None:
                    profile.enable()
                # Bounded: a router that stalls fails the bench instead of hanging it.
                deadline = t0 + max(120.0, n / 20)
                while (moved := await _depth(ch, q.function(sink.routes[0].name))) < n:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"router moved {moved}/{n} events before the deadline")
                    await asyncio.sleep(0.05)
                if profile is not None:
                    profile.disable()
                cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
                use = resource.getrusage(resource.RUSAGE_SELF)
                left = await _depth(ch, q.ingress)
                stop.set()
                await task
            finally:
                for name in queue_arguments(settings, app):
                    await ch.queue_delete(name)
    cpu_us = cpu / n * 1e6
    return {
        "events": n,
        "events_per_s": round(n / elapsed, 1),
        "cpu_us_per_event": round(cpu_us, 1),
        # The kernel's share: each frame written is a loopback send, charged to us.
        "system_us_per_event": round((use.ru_stime - use0.ru_stime) / n * 1e6, 1),
        "cpu_cores": round(cpu / elapsed, 2),
        "target_cpu_us": TARGET_CPU_US,
        "met": cpu_us <= TARGET_CPU_US,
        "ingress_left": left,
        "event_loop": settings.event_loop,
        "load_avg": round(load_avg, 2),
    }


def measure(n: int = 20_000, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """:func:`drain` on the event loop the runtime itself runs on (``event_loop``)."""
    settings = load()
    if settings.event_loop == "uvloop":
        return uvloop.run(drain(n, settings, profile))
    return asyncio.run(drain(n, settings, profile))


def main() -> None:
    """Print one measurement as JSON; optionally write a cProfile of the drain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=int, nargs="?", default=20_000)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the drain here")
    args = parser.parse_args()
    logs.configure("WARNING")
    profile = cProfile.Profile(time.process_time) if args.profile else None
    result = measure(args.events, profile)
    if profile is not None:
        profile.dump_stats(args.profile)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
