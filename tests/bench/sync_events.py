"""What ``MINIO_API_SYNC_EVENTS=on`` changes, measured on the native stack.

Run after ``make up`` (the native MinIO and RabbitMQ, which this restarts):
``python -m tests.bench.sync_events``. For each setting (off, then on; MinIO
restarted with it in its environment, in the fast profile):

* PUT latency and PUT → result.json at a steady rate (``load.open_loop``);
* RabbitMQ stopped: each of a few PUTs timed (does it fail, block, or return?),
  then RabbitMQ started again and the objects' results awaited: how many of
  those events MinIO still delivered, and how many only the sweep would heal.

Bounded: a few hundred small objects, a per-PUT timeout, RabbitMQ down for
about the outage PUTs only. Restores MinIO without the setting at the end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from runtime.adapters.s3 import S3Storage
from runtime.core import logs
from runtime.core.names import result_key
from runtime.core.settings import load
from tests.bench.load import BODY, open_loop, pct

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_PUTS = 10
PUT_TIMEOUT = 20.0  # seconds one PUT may take before we call it blocked


def script(name: str, action: str, **env: str) -> None:
    subprocess.run([ROOT / f"infra/local/{name}.sh", action], check=True, env={**os.environ, **env})


def minio(sync: bool) -> None:
    """Restart MinIO (fast profile) with or without synchronous events."""
    env = {"BUCKETFN_PROFILE": "fast"}
    script("minio", "stop", **env)
    if sync:
        env["MINIO_API_SYNC_EVENTS"] = "on"
    else:
        os.environ.pop("MINIO_API_SYNC_EVENTS", None)
    script("minio", "start", **env)


async def outage() -> dict[str, Any]:
    """PUT while RabbitMQ is down; time each; then count the results after it is back."""
    settings = load()
    run = uuid.uuid4().hex[:8]
    keys = [f"uploads/sync-{run}/{i}.csv" for i in range(OUTAGE_PUTS)]
    times: list[float] = []
    errors: list[str] = []
    script("rabbitmq", "stop")
    try:
        async with S3Storage.connect(settings) as storage:
            for key in keys:
                t0 = time.perf_counter()
                try:
                    await asyncio.wait_for(
                        storage.put("job-inputs", key, BODY, content_type="text/csv"), PUT_TIMEOUT
                    )
                except TimeoutError:
                    errors.append("blocked")
                except Exception as exc:  # what the PUT did is the measurement
                    errors.append(type(exc).__name__ + ": " + str(exc)[:120])
                times.append(time.perf_counter() - t0)
    finally:
        script("rabbitmq", "start")
    back = time.perf_counter()
    # Results of the outage's events, if MinIO kept and resent them; the sweep
    # (60 s interval, 30 s grace by default) would heal the rest later.
    found: set[str] = set()
    async with S3Storage.connect(settings) as storage:
        while time.perf_counter() - back < 20 and len(found) < len(keys):
            for key in keys:
                if key not in found and await storage.head(
                    "job-outputs", result_key("csv_row_count", key)
                ):
                    found.add(key)
            await asyncio.sleep(0.5)
    return {
        "puts": len(keys),
        "put_s": [round(t, 3) for t in times],
        "put_p50_ms": round(pct(times, 50) * 1000, 1),
        "errors": errors,
        "results_within_20s_of_restart": len(found),
    }


def measure(sync: bool) -> dict[str, Any]:
    minio(sync)
    time.sleep(2)  # MinIO connects its AMQP target after it is healthy
    try:
        steady: dict[str, Any] = asyncio.run(open_loop(20, 10, load()))
    except Exception as exc:  # a PUT that failed or hung is the finding, not a crash
        steady = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"sync_events": sync, "steady_20_per_s": steady, "broker_outage": asyncio.run(outage())}


def main() -> int:
    logs.configure("WARNING")
    runs = [measure(False), measure(True), measure(False), measure(True)]
    minio(False)
    out = {"load_avg": os.getloadavg(), "runs": runs}
    (ROOT / "bench-sync-events.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    for r in runs:
        s, o = r["steady_20_per_s"], r["broker_outage"]
        if "error" in s:
            print(f"sync {'on ' if r['sync_events'] else 'off'}: steady run failed: {s['error']}")
            continue
        print(
            f"sync {'on ' if r['sync_events'] else 'off'}: PUT p50 {s['put_p50_ms']} ms "
            f"p99 {s['put_p99_ms']} ms; PUT→result p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
            f"(load {s['load_avg']}); broker down: PUT p50 {o['put_p50_ms']} ms, "
            f"errors {o['errors'][:2]}, results after restart {o['results_within_20s_of_restart']}"
            f"/{o['puts']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
