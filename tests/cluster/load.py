"""Load on the distributed MinIO, and the accounting of what came of it.

Uploads go round-robin to the four MinIO servers, as a load balancer would send
them; an upload a server fails (it was killed) is retried on the next one, and
only an upload some server acknowledged counts as an object. Afterwards every
object must have exactly one ok result record, and no side effect may have
happened twice: the output bucket is versioned, so a record or a ``touch.json``
written twice for one object shows as two versions of it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from runtime.core.names import output_prefix, result_key
from tests.cluster.app import BUCKET, OUTPUT, cluster_touch

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FUNCTION = cluster_touch.__name__


def client(endpoint: str, *, patient: bool = False) -> S3Client:
    """An uploader's client fails fast (the load generator tries the next server);
    a ``patient`` one, for the accounting, retries and waits out a busy server."""
    if patient:
        config = Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 10},
            read_timeout=60,
        )
    else:
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
            max_pool_connections=16,
        )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
        config=config,
    )


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario's line in the table."""

    scenario: str
    objects: int  # uploads a server acknowledged
    results: int  # objects with an ok result record
    lost: int
    duplicated: int  # objects whose record or touch.json has more than one version
    reruns: int  # redelivered invocations that found their side effect already done
    recovered_s: float  # from the fault to the last result written
    drained_s: float  # from the last upload to the last result written
    peaks: dict[int, int]  # per runtime pid: most invocations at once
    peak_all: int  # most invocations at once across all processes

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0


class Load:
    """Upload ``objects`` at ``rate``/s under a fresh prefix, with ``fault`` mid-load."""

    def __init__(self, endpoints: list[str], objects: int, rate: float) -> None:
        self.clients = [client(e) for e in endpoints]
        self.reader = client(endpoints[0], patient=True)
        self.objects = objects
        self.rate = rate
        self.prefix = f"load/{uuid.uuid4().hex[:8]}/"
        self.acked: set[str] = set()
        # Where this load's records and touches are: plain keys keep their shape
        # in output keys (runtime.core.names.safe_key), so one listing finds them.
        self.outputs = f"{FUNCTION}/{self.prefix}"
        assert result_key(FUNCTION, f"{self.prefix}0.bin").startswith(self.outputs)
        self._lock = threading.Lock()

    def _upload(self, i: int) -> None:
        key = f"{self.prefix}{i:05d}.bin"
        body = uuid.uuid4().bytes * 4
        start = i % len(self.clients)
        order = itertools.islice(itertools.cycle(self.clients), start, None)
        deadline = time.monotonic() + 120
        for s3 in order:
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            except Exception:
                if time.monotonic() > deadline:
                    return  # never acknowledged: not an object the system owes a result
                time.sleep(0.2)
                continue
            with self._lock:
                self.acked.add(key)
            return

    def run(self, fault: Callable[[], None]) -> tuple[float, float]:
        """Upload everything, calling ``fault`` after a third.

        Returns the wall-clock times of the fault and of the last acknowledged upload.
        """
        at = self.objects // 3
        fault_at = 0.0
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            for i in range(self.objects):
                if i == at:
                    fault_at = time.time()
                    pool.submit(fault)
                pool.submit(self._upload, i)
                time.sleep(max(0.0, start + (i + 1) / self.rate - time.monotonic()))
        return fault_at, time.time()

    def wait(self, timeout: float) -> int:
        """Wait until every acknowledged object has a result record; how many have."""
        s3 = self.reader
        wanted = {result_key(FUNCTION, k) for k in self.acked}
        deadline = time.monotonic() + timeout
        found: set[str] = set()
        while time.monotonic() < deadline:
            # A busy or failing server: ask again on the next round.
            with contextlib.suppress(BotoCoreError, ClientError):
                found = wanted & set(_keys(s3, self.outputs))

            if found == wanted:
                break
            time.sleep(2)
        return len(found)

    def account(self, name: str, fault_at: float, load_end: float) -> Row:
        """Read every record and every version under the prefix: the scenario's row."""
        s3 = self.reader
        versions: Counter[str] = Counter()
        pages = s3.get_paginator("list_object_versions")
        for page in pages.paginate(Bucket=OUTPUT, Prefix=self.outputs):
            versions.update(v["Key"] for v in page.get("Versions", []))
        keys = sorted(self.acked)

        def record(key: str) -> dict[str, object] | None:
            try:
                obj = s3.get_object(Bucket=OUTPUT, Key=result_key(FUNCTION, key))
            except s3.exceptions.NoSuchKey:
                return None
            doc: dict[str, object] = orjson.loads(obj["Body"].read())
            return doc

        with ThreadPoolExecutor(8) as pool:
            records = list(pool.map(record, keys))
        ok = [r for r in records if r is not None and r.get("status") == "ok"]
        touch = "touch.json"
        duplicated = sum(
            1
            for k in keys
            if versions[result_key(FUNCTION, k)] > 1
            or versions[output_prefix(FUNCTION, k) + touch] > 1
        )
        outputs = [out for r in ok if isinstance(out := r.get("output"), dict)]
        peaks: dict[int, int] = {}
        for out in outputs:
            pid, concurrent = int(out["pid"]), int(out["concurrent"])
            peaks[pid] = max(peaks.get(pid, 0), concurrent)
        last = max((_time(r["finished_at"]) for r in ok), default=fault_at)
        return Row(
            scenario=name,
            objects=len(keys),
            results=len(ok),
            lost=len(keys) - len(ok),
            duplicated=duplicated,
            reruns=sum(1 for out in outputs if out.get("rerun")),
            recovered_s=max(0.0, last - fault_at),
            drained_s=max(0.0, last - load_end),
            peaks=peaks,
            peak_all=_overlap(ok),
        )


def _keys(s3: S3Client, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=OUTPUT, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _time(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def _overlap(records: list[dict[str, object]]) -> int:
    """Most handler runs in progress at one instant, over every process (a sweep line)."""
    edges: list[tuple[float, int]] = []
    for r in records:
        begin = _time(r["started_at"])
        edges.append((begin, 1))
        edges.append((begin + float(str(r["duration_ms"])) / 1000, -1))
    running = peak = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak
