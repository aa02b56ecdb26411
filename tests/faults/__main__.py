"""``make faults``: faults injected into the local stack while it works, and what they cost.

Run ``make up`` first (the default, fast profile). Each scenario uploads small
CSVs under a prefix of its own at a steady rate, injects its fault mid-load,
then waits for every object's ``result.json`` and checks its row count. The
table says, per scenario: objects, results, lost, wrong, and the time from the
fault until the last result landed. Traffic goes to loopback only, and each
scenario is bounded in count and time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import orjson
from botocore.config import Config

from runtime.core.names import result_key
from runtime.core.settings import load

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "infra/local"


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    objects: int
    results: int
    lost: int
    wrong: int
    recovered_s: float


def _client() -> S3Client:
    s = load()
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        aws_access_key_id=s.s3_access_key,
        aws_secret_access_key=s.s3_secret_key.get_secret_value(),
        region_name=s.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def _body(i: int) -> tuple[bytes, int]:
    rows = 1 + i % 7
    lines = [b"id,note"] + [f'{j},"row {j}\nspans lines"'.encode() for j in range(rows)]
    return b"\n".join(lines) + b"\n", rows


def run(
    name: str, objects: int, rate: float, fault: Callable[[], None], at: int, timeout: float
) -> Row:
    """Upload ``objects`` at ``rate``/s, call ``fault`` after ``at`` uploads, await results."""
    s3 = _client()
    prefix = f"uploads/faults-{name}-{uuid.uuid4().hex[:8]}/"
    expected: dict[str, int] = {}
    faulted = threading.Event()
    fault_at = [0.0]

    def upload(i: int) -> None:
        key = f"{prefix}{i:05d}.csv"
        body, rows = _body(i)
        for _ in range(60):  # the fault may make the store refuse for a moment
            try:
                s3.put_object(Bucket="job-inputs", Key=key, Body=body)
                break
            except Exception:  # retried until the store answers again
                time.sleep(0.5)
        expected[key] = rows

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for i in range(objects):
            if i == at:
                fault_at[0] = time.monotonic()
                pool.submit(fault)
                faulted.set()
            pool.submit(upload, i)
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    deadline = time.monotonic() + timeout
    got: dict[str, int | None] = {}
    last = time.monotonic()
    while len(got) < len(expected) and time.monotonic() < deadline:
        for key in expected:
            if key in got:
                continue
            try:
                obj = s3.get_object(Bucket="job-outputs", Key=result_key("csv_row_count", key))
            except s3.exceptions.NoSuchKey:
                continue
            doc = orjson.loads(obj["Body"].read())
            got[key] = doc.get("output", {}).get("rows") if doc.get("status") == "ok" else None
            last = time.monotonic()
        time.sleep(0.5)
    wrong = sum(1 for k, v in got.items() if v != expected[k])
    return Row(name, len(expected), len(got), len(expected) - len(got), wrong, last - fault_at[0])


def _restart_rabbitmq() -> None:
    subprocess.run([str(LOCAL / "rabbitmq.sh"), "stop"], check=True, capture_output=True)
    time.sleep(3)
    subprocess.run([str(LOCAL / "rabbitmq.sh"), "start"], check=True, capture_output=True)


def _restart_minio() -> None:
    subprocess.run([str(LOCAL / "minio.sh"), "stop"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run([str(LOCAL / "minio.sh"), "start"], check=True, capture_output=True)


def _close_connections() -> None:
    subprocess.run(
        [str(LOCAL / "rabbitmq.sh"), "ctl", "close_all_connections", "fault injection"],
        check=True,
        capture_output=True,
    )


SCENARIOS: dict[str, Callable[[], None]] = {
    "rabbitmq-restart": _restart_rabbitmq,
    "minio-restart": _restart_minio,
    "close-connections": _close_connections,
}


def main() -> int:
    """Run the scenarios and print the table; non-zero if anything was lost or wrong."""
    parser = argparse.ArgumentParser(prog="make faults")
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=240.0, help="per scenario, after load")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    rows = []
    for name in args.scenarios:
        print(f"{name}: {args.objects} objects at {args.rate}/s…", flush=True)
        rows.append(
            run(name, args.objects, args.rate, SCENARIOS[name], args.objects // 3, args.timeout)
        )
    print("\n| scenario | objects | results | lost | wrong | fault → last result |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = (r.scenario, r.objects, r.results, r.lost, r.wrong, f"{r.recovered_s:.1f} s")
        print("| " + " | ".join(map(str, cells)) + " |")
    return 0 if all(r.lost == 0 and r.wrong == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
