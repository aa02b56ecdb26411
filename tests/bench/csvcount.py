"""P1 and P2: csv_row_count against the raw GET it rides on, and its peak memory.

P1 streams one generated 1 GB CSV from MinIO — the function's own ranged read
raw, a plain single GET, two parallel ranged GETs, and the function's read
through its record counter — and compares with ``csv.reader`` and ``wc -l`` on
the same bytes from a local file. P2 runs one whole invocation of
csv_row_count in a fresh process on a 2 MB and a 2 GB object and reports the
process's peak RSS.
"""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from functions.csv_count.count import count_records
from runtime.adapters.s3 import S3Storage
from runtime.core.settings import load
from tests.bench.put_to_result import write_csv

BUCKET = "job-inputs"
MIB = 1 << 20


async def _upload(path: Path, key: str) -> None:
    async def chunks() -> Any:
        with path.open("rb") as f:
            while block := f.read(8 * MIB):
                yield block

    async with S3Storage.connect(load()) as storage:
        await storage.put(BUCKET, key, chunks(), content_type="text/csv")


async def _stream(key: str, count: bool) -> tuple[float, int]:
    """GB/s of one streamed GET, raw or through csv_row_count's own counting loop."""
    async with S3Storage.connect(load()) as storage:
        t0 = time.perf_counter()
        chunks = storage.stream(BUCKET, key, chunk_size=MIB)
        if count:
            counted = await count_records(chunks)
            n, rows = counted.bytes, counted.rows
        else:
            n, rows = 0, -1
            async for chunk in chunks:
                n += len(chunk)
        return n / (time.perf_counter() - t0) / 1e9, rows


async def _drain(body: Any) -> int:
    """Read a GET's body to its end, 1 MiB at a time; the bytes read."""
    n = 0
    try:
        async for chunk in body.iter_chunks(MIB):
            n += len(chunk)
    finally:
        body.close()
    return n


async def _plain(key: str) -> float:
    """GB/s of one plain GET of the whole object (no ranges): the issue's single stream."""
    async with S3Storage.connect(load()) as storage:
        t0 = time.perf_counter()
        resp = await storage.client.get_object(Bucket=BUCKET, Key=key)
        n = await _drain(resp["Body"])
        return n / (time.perf_counter() - t0) / 1e9


async def _parallel(key: str, size: int, ranges: int = 2) -> float:
    """GB/s of ``ranges`` concurrent ranged GETs covering the object (P1's stretch baseline)."""
    async with S3Storage.connect(load()) as storage:
        step = -(-size // ranges)

        async def part(start: int) -> int:
            end = min(size, start + step) - 1
            resp = await storage.client.get_object(
                Bucket=BUCKET, Key=key, Range=f"bytes={start}-{end}"
            )
            return await _drain(resp["Body"])

        t0 = time.perf_counter()
        n = sum(await asyncio.gather(*(part(i * step) for i in range(ranges))))
        return n / (time.perf_counter() - t0) / 1e9


def _csv_reader_gbs(path: Path, limit: int = 100_000_000) -> float:
    data = path.read_bytes()[:limit]
    data = data[: data.rfind(b"\n1") + 1]
    t0 = time.perf_counter()
    rows = sum(1 for _ in csv.reader(io.StringIO(data.decode(), newline="")))
    elapsed = time.perf_counter() - t0
    assert rows > 0
    return len(data) / elapsed / 1e9


def _wc_gbs(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(["wc", "-l", str(path)], check=True, capture_output=True, text=True)
    return path.stat().st_size / (time.perf_counter() - t0) / 1e9, int(out.stdout.split()[0])


def p1(tmp: Path, size: int = 1_000_000_000, runs: int = 3) -> dict[str, Any]:
    """GB/s of raw GET, GET + count, csv.reader, wc -l; and the exact row count."""
    path = tmp / "p1.csv"
    rows = write_csv(path, size)
    key = "bench/p1.csv"
    asyncio.run(_upload(path, key))
    raw = [asyncio.run(_stream(key, count=False))[0] for _ in range(runs)]
    plain = [asyncio.run(_plain(key)) for _ in range(runs)]
    parallel = [asyncio.run(_parallel(key, path.stat().st_size)) for _ in range(runs)]
    counted = [asyncio.run(_stream(key, count=True)) for _ in range(runs)]
    wc = _wc_gbs(path)
    result = {
        "bytes": path.stat().st_size,
        "rows_expected": rows,
        "rows_counted": counted[0][1],
        # The function's own read: 8 MiB ranged GETs pinned to the revision (so a
        # writer of the key is never blocked behind a long read; see the README).
        "raw_get_gb_s": round(statistics.median(raw), 3),
        "plain_get_gb_s": round(statistics.median(plain), 3),
        "two_ranges_gb_s": round(statistics.median(parallel), 3),
        "get_and_count_gb_s": round(statistics.median(c[0] for c in counted), 3),
        "csv_reader_gb_s": round(_csv_reader_gbs(path), 3),
        "wc_l_gb_s": round(wc[0], 2),
        "wc_l_lines": wc[1],
    }
    got = result["get_and_count_gb_s"]
    result["ratio_to_raw_get"] = round(got / result["raw_get_gb_s"], 2)
    result["ratio_to_plain_get"] = round(got / result["plain_get_gb_s"], 2)
    result["ratio_to_two_ranges"] = round(got / result["two_ranges_gb_s"], 2)
    return result


def _peak_rss_mb(key: str) -> float:
    code = (
        "import asyncio, sys\n"
        "from tests.bench.csvcount import invoke_once, peak_rss_kb\n"
        "asyncio.run(invoke_once(sys.argv[1]))\n"
        "print(peak_rss_kb())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, key], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM); unlike ru_maxrss it is not carried over exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


async def invoke_once(key: str) -> None:
    """One real invocation of csv_row_count (S3 in, result.json out), no broker."""
    from functions.csv_count.count import router
    from runtime.core.names import Queues
    from runtime.core.records import Invocation
    from runtime.engine.outcome import Status
    from runtime.engine.worker import Worker
    from runtime.testing import MemoryPublisher

    settings = load()
    async with S3Storage.connect(settings) as storage:
        info = await storage.head(BUCKET, key)
        assert info is not None
        from runtime.core.events import PUT, ObjectEvent

        event = ObjectEvent(
            event_id=f"bench-{time.time_ns()}",
            event_name=PUT,
            bucket=BUCKET,
            key=key,
            size=info.size,
            etag=info.etag,
            version_id=info.version_id,
        )
        worker = Worker(
            router.routes[0],
            storage=storage,
            publisher=MemoryPublisher(),
            queues=Queues("bench"),
            output_bucket=settings.output_bucket,
            chunk_size=settings.read_chunk_size,
        )
        outcome = await worker.invoke(Invocation(function="csv_row_count", event=event))
        assert outcome.status in (Status.OK, Status.DUPLICATE), outcome


def p2(tmp: Path) -> dict[str, Any]:
    """Peak RSS of one invocation on a 2 MB and a 2 GB CSV."""
    out: dict[str, Any] = {}
    for label, size in (("2MB", 2_000_000), ("2GB", 2_000_000_000)):
        path = tmp / f"p2-{label}.csv"
        write_csv(path, size)
        key = f"bench/p2-{label}.csv"
        asyncio.run(_upload(path, key))
        path.unlink()
        out[f"peak_rss_mb_{label}"] = round(_peak_rss_mb(key), 1)
    out["difference_mb"] = round(out["peak_rss_mb_2GB"] - out["peak_rss_mb_2MB"], 1)
    out["bench_process_peak_rss_mb"] = round(peak_rss_kb() / 1024, 1)
    return out
