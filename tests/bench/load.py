"""P4/P5: end-to-end throughput and latency, MinIO PUT rate alone, the S3-only ceiling.

Everything runs on one machine: MinIO, RabbitMQ, the runtime (started by
``make up``) and this load generator share its cores, so the figures are of the
whole system on that hardware, not of any one part.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runtime.adapters.s3 import S3Storage
from runtime.core.settings import Settings
from tests.servers import s3_client

BODY = b"id,value\n1,2\n"


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def open_loop(rate: float, seconds: float, settings: Settings) -> dict[str, Any]:
    """PUT small CSVs at a fixed rate (open loop); time each until its result.json exists."""
    run = uuid.uuid4().hex[:8]
    n = int(rate * seconds)
    done: dict[str, float] = {}
    puts: list[float] = []
    async with S3Storage.connect(settings) as storage:
        t0 = time.time() + 0.2

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.time()))
            key = f"uploads/bench-{run}/{i}.csv"
            sent = time.time()
            await storage.put("job-inputs", key, BODY, content_type="text/csv")
            done[key] = time.time()
            puts.append(done[key] - sent)

        await asyncio.gather(*(one(i) for i in range(n)))
        put_lag = max(done.values()) - (t0 + (n - 1) / rate)
        s3 = storage.client
        prefix = f"csv_row_count/uploads/bench-{run}/"
        finished: dict[str, float] = {}
        deadline = time.time() + 60
        while len(finished) < n and time.time() < deadline:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket="job-outputs", Prefix=prefix):
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/result.json"):
                        continue  # a history entry of the result ledger, not a result
                    src = obj["Key"].removeprefix("csv_row_count/").removesuffix("/result.json")
                    finished[src] = obj["LastModified"].timestamp()
            if len(finished) < n:
                await asyncio.sleep(0.5)
        # Leave nothing behind: every sweep pass lists uploads/, and a growing
        # pile of old bench objects would cost the next measurement CPU.
        await _remove(storage, "job-inputs", f"uploads/bench-{run}/")
        await _remove(storage, "job-outputs", prefix)
    latencies = [finished[k] - done[k] for k in finished if k in done]
    span = max(finished.values()) - t0 if finished else float("inf")
    return {
        "rate": rate,
        "sent": n,
        "completed": len(finished),
        "put_lag_s": round(put_lag, 3),
        "throughput_eps": round(len(finished) / span, 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 1) if latencies else None,
        "p99_ms": round(pct(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "put_p50_ms": round(pct(puts, 50) * 1000, 1),
        "put_p99_ms": round(pct(puts, 99) * 1000, 1),
        "load_avg": round(os.getloadavg()[0], 2),
    }


async def _remove(storage: S3Storage, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``, a thousand per request."""
    keys = [info.key async for info in storage.list(bucket, prefix)]
    for start in range(0, len(keys), 1000):
        batch: Any = {"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
        await storage.client.delete_objects(Bucket=bucket, Delete=batch)


async def minio_put_rate(settings: Settings, seconds: float = 5, concurrency: int = 32) -> float:
    """Small-object PUTs per second, closed loop, to a bucket with no notifications."""
    bucket = "bucketfn-bench"
    async with S3Storage.connect(settings) as storage:
        s3 = storage.client
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=bucket)
        count = 0
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < stop:
                await storage.put(bucket, f"w{w}/{i}", BODY)
                i += 1
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return count / (time.perf_counter() - t0)


CEILING_BUCKET = "bucketfn-bench"
REQUESTS = 4  # S3 requests per event in :func:`_cycle`


def _cycle(s3: Any, key: str) -> None:
    """One event's S3 requests as the runtime makes them, with no runtime: the upload,
    the record's HEAD, the GET, and the record's conditional PUT."""
    b = CEILING_BUCKET
    s3.put_object(Bucket=b, Key=key, Body=BODY)
    with contextlib.suppress(s3.exceptions.ClientError):
        s3.head_object(Bucket=b, Key=f"out/{key}/result.json")  # 404: not done yet
    s3.get_object(Bucket=b, Key=key)["Body"].read()
    s3.put_object(Bucket=b, Key=f"out/{key}/result.json", Body=b'{"status": "ok"}', IfNoneMatch="*")


def s3_ceiling(settings: Settings, seconds: float = 8, threads: int = 8) -> dict[str, Any]:
    """Events/s the store allows with no runtime at all: ``threads`` bare boto3 clients
    each running :func:`_cycle` back to back, to a bucket with no notifications."""
    run = uuid.uuid4().hex[:8]
    admin = s3_client(settings)
    with contextlib.suppress(admin.exceptions.BucketAlreadyOwnedByYou):
        admin.create_bucket(Bucket=CEILING_BUCKET)
    stop = time.perf_counter() + seconds
    cycles = [0] * threads

    def worker(w: int) -> None:
        s3 = s3_client(settings)
        while time.perf_counter() < stop:
            _cycle(s3, f"ceiling-{run}/{w}/{cycles[w]}.csv")
            cycles[w] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    rate = sum(cycles) / (time.perf_counter() - t0)
    keys = [
        o["Key"]
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=CEILING_BUCKET)
        for o in page.get("Contents", [])
    ]
    for start in range(0, len(keys), 1000):
        batch: Any = {"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
        admin.delete_objects(Bucket=CEILING_BUCKET, Delete=batch)
    return {"events_per_s": round(rate, 1), "threads": threads, "requests_per_event": REQUESTS}


def runtime_cpu_seconds() -> float | None:
    """CPU time (user + system) of the `make up` runtime so far; None if it is not running."""
    pidfile = Path(os.environ.get("BUCKETFN_STATE", ".state"), "runtime", "runtime.pid")
    try:
        pid = int(pidfile.read_text().split()[0])
        # Fields after the command name: utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
