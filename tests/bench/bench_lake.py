"""Throughput and memory of raw → staging on a generated ``orders`` CSV.

Run ``python -m tests.bench.bench_lake [MB]`` (default 100). Two figures:

* harness: ``to_staging`` through :class:`runtime.testing.Harness`, everything
  in memory (the input, the Parquet, the rejects) — rows/s of the function;
* streamed: the same handler driven by the runtime's worker in a fresh process
  whose storage streams the input from disk and discards what is written, as
  S3 does — rows/s, and peak RSS, which must not grow with the input: only the
  dedupe digests (one per distinct order id) do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from functions.lake import staging as to_staging
from functions.lake.demo import write_orders
from runtime.core.events import ObjectEvent
from runtime.core.names import Queues
from runtime.core.records import Invocation
from runtime.core.seams import Body, ObjectInfo
from runtime.engine.outcome import Status
from runtime.engine.worker import Worker
from runtime.testing import Harness, MemoryPublisher
from runtime.testing.memory import precondition

MIB = 1024 * 1024
ROUTE = to_staging.router.routes[0]
KEY = "orders/bench/orders.csv"


def make_file(path: str, size: int, seed: int = 11) -> dict[str, int]:
    """Write a CSV of about ``size`` bytes to ``path``; return the expected counts."""
    rows = max(1, size // 71)  # the demo's rows average ~71 bytes
    with open(path, "w", newline="", encoding="utf-8") as out:
        expected = write_orders(
            out, rows=rows, bad_fraction=0.02, duplicates=rows // 100, seed=seed
        )
    return {
        "read": expected.read,
        "written": expected.written,
        "rejected": expected.rejected,
        "duplicates": expected.duplicates,
    }


class DiskStorage:
    """Reads the one input from disk in chunks; counts and drops what is written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written: dict[str, int] = {}
        # What a written key holds (sizes and metadata, never data): the result
        # ledger lists, HEADs and copies what it wrote.
        self.held: dict[str, ObjectInfo] = {}

    async def stream(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        etag: str | None = None,
        chunk_size: int = MIB,
    ) -> AsyncIterator[bytes]:
        with open(self.path, "rb") as f:  # noqa: ASYNC230 - a local benchmark file
            while chunk := f.read(chunk_size):
                yield chunk

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        if f"{bucket}/{key}" in self.held:
            return self.held[f"{bucket}/{key}"]
        if key == KEY:  # the one input
            return ObjectInfo(bucket=bucket, key=key, etag="bench", version_id=None)
        return None

    async def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        held = self.held.get(f"{bucket}/{key}")
        precondition(
            f"PUT {bucket}/{key}", held.etag if held else None, if_match, if_absent=if_absent
        )
        size = len(body) if isinstance(body, bytes) else sum([len(c) async for c in body])
        self.written[f"{bucket}/{key}"] = size
        info = ObjectInfo(
            bucket=bucket,
            key=key,
            etag="x",
            version_id=None,
            size=size,
            metadata=dict(metadata or {}),
        )
        self.held[f"{bucket}/{key}"] = info
        return info

    async def list(
        self, bucket: str, prefix: str = "", *, start_after: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        for name in sorted(self.held):
            info = self.held[name]
            if info.bucket == bucket and info.key.startswith(prefix) and info.key > start_after:
                yield info

    async def copy(self, bucket: str, key: str, *, to_bucket: str, to_key: str) -> ObjectInfo:
        src = self.held[f"{bucket}/{key}"]
        info = dataclasses.replace(src, bucket=to_bucket, key=to_key)
        self.held[f"{to_bucket}/{to_key}"] = info
        self.written[f"{to_bucket}/{to_key}"] = src.size or 0
        return info

    async def delete(self, bucket: str, key: str) -> None:
        self.held.pop(f"{bucket}/{key}", None)


def _status_mb(field: str) -> float:
    """A size from /proc/self/status (Linux), in MB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> None:
    # A child inherits its parent's peak RSS (ru_maxrss survives fork and exec);
    # writing 5 to clear_refs restarts the high-water mark from the current RSS.
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


async def _streamed(path: str, size: int) -> dict[str, Any]:
    storage = DiskStorage(path)
    worker = Worker(
        ROUTE,
        storage=storage,
        publisher=MemoryPublisher(),
        queues=Queues("bench"),
        output_bucket="job-outputs",
        chunk_size=MIB,
    )
    event = ObjectEvent(
        event_id="bench",
        event_name="s3:ObjectCreated:Put",
        bucket="raw",
        key=KEY,
        etag="bench",
        size=size,
    )
    _reset_peak()
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    outcome = await worker.invoke(Invocation(function=ROUTE.name, event=event))
    seconds = time.perf_counter() - started
    assert outcome.status is Status.OK and outcome.result is not None
    output = outcome.result.output
    return {
        "seconds": round(seconds, 2),
        "rows_per_s": round(output["read"] / seconds),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(_status_mb("VmHWM")),
        "parquet_mb": round(storage.written[f"staging/{output['staging_key']}"] / 1e6, 1),
        "counts": {k: output[k] for k in ("read", "written", "rejected", "duplicates")},
    }


async def _harness(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:  # noqa: ASYNC230 - a local benchmark file
        data = f.read()
    h = Harness()
    started = time.perf_counter()
    result = await h.run(ROUTE, data, key=KEY, bucket="raw")
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "rows_per_s": round(result.output["read"] / seconds),
        "mb_per_s": round(len(data) / seconds / 1e6, 1),
    }


def measure(size: int = 100_000_000) -> dict[str, Any]:
    """Figures for a file of about ``size`` bytes; the streamed run in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "orders.csv")
        expected = make_file(path, size)
        report = os.path.join(tmp, "streamed.json")
        # The runtime logs to stdout, so the child reports through a file.
        subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_lake", "--streamed", path, report],
            check=True,
            capture_output=True,
        )
        with open(report, "rb") as f:
            streamed = orjson.loads(f.read())
        harness = asyncio.run(_harness(path))
        return {
            "bytes": os.path.getsize(path),
            "expected": expected,
            "counts_agree": streamed.pop("counts") == expected,
            "streamed": streamed,
            "harness": harness,
        }


def main() -> None:
    """Print the figures; exit non-zero if the counts are wrong."""
    if sys.argv[1:2] == ["--streamed"]:
        path, report = sys.argv[2:4]
        figures = asyncio.run(_streamed(path, os.path.getsize(path)))
        with open(report, "wb") as f:
            f.write(orjson.dumps(figures))
        return
    size = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 100_000_000
    result = measure(size)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    if not result["counts_agree"]:
        sys.exit("to_staging's counts differ from the generator's")


if __name__ == "__main__":
    main()
