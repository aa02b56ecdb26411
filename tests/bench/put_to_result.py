"""PUT → result.json latency for CSVs of a given size, against a running stack.

Run ``make up`` first, then e.g. ``python -m tests.bench.put_to_result 1MB 1GB``.
The time is measured from the moment the upload returns (the object exists and
MinIO has emitted its event) until ``result.json`` for that upload is readable.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from boto3.s3.transfer import TransferConfig

from runtime.core.names import result_key
from runtime.core.settings import load
from tests.servers import s3_client

UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(text: str) -> int:
    """``1MB`` → 1_000_000."""
    return int(float(text[:-2]) * UNITS[text[-2:].upper()])


def write_csv(path: Path, size: int, seed: int = 7) -> int:
    """A CSV of about ``size`` bytes, ~5% quoted fields with newlines; returns its rows."""
    rng = random.Random(seed)
    block_rows = []
    for i in range(20_000):
        note = '"multi\nline, quoted"' if rng.random() < 0.05 else "plain note"
        block_rows.append(f"{i},{rng.randint(1, 9999)},{rng.random() * 1000:.2f},{note},EUR\n")
    block = "".join(block_rows).encode()
    rows = 0
    with path.open("wb") as f:
        f.write(b"id,customer,amount,note,currency\n")
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
            rows += len(block_rows)
        rest = block[: size - written]
        rest = rest[: rest.rfind(b"\n") + 1]
        f.write(rest)
        rows += rest.count(b"\n") - rest.count(b"\nline")
    return rows


def measure(size: int, repeats: int = 3, timeout: float = 600) -> dict[str, Any]:
    """Upload a CSV ``repeats`` times; time each upload and each PUT→result."""
    settings = load()
    s3 = s3_client(settings)
    latencies, uploads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        rows = write_csv(path, size)
        nbytes = path.stat().st_size
        for _ in range(repeats):
            key = f"uploads/bench-{uuid.uuid4().hex[:8]}/data.csv"
            t0 = time.perf_counter()
            s3.upload_file(
                str(path),
                "job-inputs",
                key,
                Config=TransferConfig(
                    multipart_threshold=64 * 1024**2, multipart_chunksize=64 * 1024**2
                ),
            )
            t1 = time.perf_counter()
            rkey = result_key("csv_row_count", key)
            while True:
                try:
                    doc = orjson.loads(s3.get_object(Bucket="job-outputs", Key=rkey)["Body"].read())
                    break
                except s3.exceptions.NoSuchKey:
                    if time.perf_counter() - t1 > timeout:
                        raise TimeoutError(f"no result for {key}") from None
                    time.sleep(0.02)
            t2 = time.perf_counter()
            if doc["output"]["rows"] != rows:
                raise AssertionError(f"counted {doc['output']['rows']}, expected {rows}")
            uploads.append(t1 - t0)
            latencies.append(t2 - t1)
            s3.delete_object(Bucket="job-inputs", Key=key)
    return {
        "bytes": nbytes,
        "rows": rows,
        "upload_s_median": statistics.median(uploads),
        "put_to_result_s": latencies,
        "put_to_result_s_median": statistics.median(latencies),
        "handler_ms_last": doc["duration_ms"],
    }


def main() -> None:
    """CLI: sizes as arguments."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="+", help="e.g. 1MB 1GB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for text in args.sizes:
        result = measure(parse_size(text), args.repeats)
        print(text, orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
