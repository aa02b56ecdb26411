"""``make bench-backfill``: ``bucketfn backfill`` over 10,000 objects no event announced.

The objects go under ``job-inputs/backfill-bench/<run>/``, a prefix no
notification rule covers (checked, and printed): as for a function added to a
bucket that already holds data, nothing but backfill can bring them to it. The
function is the real ``csv_row_count`` under a route of its own
(``backfill_bench``), run by a runtime inside this process (workers only, no
sweep, its own queue prefix); ``bucketfn backfill`` runs as a user runs it, a
subprocess, with its progress on this terminal.

1. upload N small CSVs (row counts 1..7); 2. a dry run: the listing rate
(objects listed and merged with their results per second); 3. the backfill:
enqueue rate, and the time until N correct results; 4. a rerun, which must
enqueue nothing; 5. an interrupted run (SIGINT after its first checkpoint) on
M more objects, resumed by a second run: every object gets its result, and the
resumed run lists only what the first had not reached.

Needs MinIO and RabbitMQ with the buckets (``make init``); the objects, results
and queues it made are removed afterwards. Figures are of the whole machine
(MinIO, RabbitMQ, this process): the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from functions.csv_count.count import csv_row_count
from runtime import App, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.core import logs
from runtime.core.settings import Settings, load
from runtime.engine.observer import Observer
from runtime.engine.outcome import Outcome
from runtime.engine.process import serve
from tests.servers import delete_queues

if TYPE_CHECKING:
    from runtime.core.records import Invocation

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "backfill_bench"
PREFIX = "backfill-bench/"
router = Router()
router.function(bucket="job-inputs", prefix=PREFIX, suffix=".csv", name=FUNCTION)(csv_row_count)
APP = App([router])
"""What ``bucketfn backfill --app tests.bench.backfill:APP`` loads."""


def rows_of(i: int) -> int:
    return i % 7 + 1


def body_of(i: int) -> bytes:
    return b"id,v\n" + b"".join(b"%d,%d\n" % (r, i) for r in range(rows_of(i)))


def load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Outcomes(Observer):
    """Counts how the in-process runtime's invocations ended (ok, duplicate, …)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        self.counts[outcome.status.value] += 1

    def settled(self) -> int:
        """Invocations that ended with a result in place (written now, or before)."""
        return self.counts["ok"] + self.counts["duplicate"]


def uncovered(rules: dict[str, Any], prefix: str) -> bool:
    """True if no queue rule on the bucket matches keys under ``prefix``."""
    for rule in rules.get("QueueConfigurations", []):
        filters = rule.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        wanted = next((f["Value"] for f in filters if f["Name"].lower() == "prefix"), "")
        if prefix.startswith(wanted) or wanted.startswith(prefix):
            return False
    return True


async def upload(storage: S3Storage, base: str, count: int, start: int = 0) -> float:
    """PUT ``count`` CSVs, 64 at a time; returns objects per second."""
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await storage.put(
                "job-inputs", f"{base}{i:06d}.csv", body_of(i), content_type="text/csv"
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    return count / (time.perf_counter() - t0)


def command(base: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runtime",
        "backfill",
        "--app",
        "tests.bench.backfill:APP",
        "--function",
        FUNCTION,
        "--prefix",
        base,
        *extra,
    ]


async def run_backfill(env: dict[str, str], base: str, *extra: str) -> tuple[dict[str, Any], float]:
    """Run ``bucketfn backfill --json``: its progress on our stderr, its tally and duration."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *command(base, "--json", *extra), env=env, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"backfill exited {proc.returncode}")
    tally: dict[str, Any] = orjson.loads(out)[FUNCTION]
    return tally, time.perf_counter() - t0


async def run_with_progress(env: dict[str, str], base: str) -> float:
    """The same run as a user sees it (its progress, then its table); its duration."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*command(base), env=env)
    if await proc.wait() != 0:
        raise RuntimeError(f"backfill exited {proc.returncode}")
    return time.perf_counter() - t0


async def results(storage: S3Storage, out: str, base: str) -> int:
    """How many result.json records exist under the run's prefix."""
    n = 0
    async for info in storage.list(out, f"{FUNCTION}/{base}"):
        n += info.key.endswith("/result.json")
    return n


async def wait_results(
    storage: S3Storage,
    out: str,
    base: str,
    n: int,
    outcomes: Outcomes,
    *,
    since: int,
    timeout: float,
) -> float:
    """Seconds until ``n`` results exist (raises after ``timeout``).

    Waits on the in-process runtime's own count of finished invocations, which
    costs nothing, and lists the results only then: listing 10,000 records
    every second would take the CPU the runtime is being measured with.
    """
    t0 = time.perf_counter()
    while True:
        if outcomes.settled() - since >= n:
            if await results(storage, out, base) >= n:
                return time.perf_counter() - t0
            await asyncio.sleep(2.0)  # duplicates were counted: a few results are still due
        if time.perf_counter() - t0 > timeout:
            have = await results(storage, out, base)
            raise TimeoutError(f"{have} of {n} results after {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def wrong_results(storage: S3Storage, out: str, base: str, first: int, count: int) -> int:
    """Read every result back; how many are not ``ok`` with the right row count."""
    sem = asyncio.Semaphore(32)
    wrong = 0

    async def check(i: int) -> None:
        nonlocal wrong
        key = f"{FUNCTION}/{base}{i:06d}.csv/result.json"
        async with sem:
            doc = orjson.loads(b"".join([c async for c in storage.stream(out, key)]))
        if doc["status"] != "ok" or doc["output"]["rows"] != rows_of(i):
            wrong += 1

    await asyncio.gather(*(check(i) for i in range(first, first + count)))
    return wrong


async def clean(storage: S3Storage, settings: Settings, bases: list[str]) -> None:
    s3 = storage.client
    for bucket, prefix in [("job-inputs", b) for b in bases] + [
        (settings.output_bucket, f"{FUNCTION}/{b}") for b in bases
    ]:
        keys = [i.key async for i in storage.list(bucket, prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})  # type: ignore[typeddict-item]


async def bench(n: int, m: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    settings = load().model_copy(update={"queue_prefix": f"bfbench-{run}"})
    env = {
        **os.environ,
        "BUCKETFN_QUEUE_PREFIX": settings.queue_prefix,
        "BUCKETFN_LOG_LEVEL": "WARNING",
    }
    base, resumed_base = f"{PREFIX}{run}/", f"{PREFIX}{run}-resume/"
    out = settings.output_bucket
    r: dict[str, Any] = {"objects": n, "resume_objects": m}
    async with S3Storage.connect(settings) as storage, Broker.connect(settings) as broker:
        rules: Any = await storage.client.get_bucket_notification_configuration(Bucket="job-inputs")
        if not uncovered(rules, PREFIX):
            raise SystemExit(
                f"a notification rule covers job-inputs/{PREFIX}: events would reach it"
            )
        print(f"no notification rule covers job-inputs/{PREFIX}: only backfill can find these")
        await broker.declare(settings, APP)
        outcomes = Outcomes()
        stop, ready = asyncio.Event(), asyncio.Event()
        runtime = asyncio.create_task(
            serve(
                APP,
                settings,
                stop,
                functions={FUNCTION},
                dispatcher=False,
                ready=ready,
                observers=(outcomes,),
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), 60)
            print(f"uploading {n:,} CSVs to job-inputs/{base} …", flush=True)
            r["upload_per_s"] = round(await upload(storage, base, n), 1)

            dry, secs = await run_backfill(env, base, "--dry-run")
            assert (dry["listed"], dry["enqueued"]) == (n, n), dry
            r["listing_per_s"] = round(n / secs, 1)
            r["dry_run_s"] = round(secs, 2)
            print(f"dry run: {dry['listed']:,} listed in {secs:.1f} s (load {load_avg()})")

            print("backfill (what a user sees):", flush=True)
            t0, since = time.perf_counter(), outcomes.settled()
            secs = await run_with_progress(env, base)
            r["backfill_s"] = round(secs, 2)
            r["enqueue_per_s"] = round(n / secs, 1)
            r["to_all_results_s"] = round(
                secs
                + await wait_results(
                    storage, out, base, n, outcomes, since=since, timeout=max(900, n / 5)
                ),
                1,
            )
            r["results_per_s"] = round(n / (time.perf_counter() - t0), 1)
            r["wrong"] = await wrong_results(storage, out, base, 0, n)
            r["load_avg"] = load_avg()
            print(
                f"{n:,} results in {r['to_all_results_s']} s, {r['wrong']} wrong "
                f"(load {load_avg()})"
            )

            again, secs = await run_backfill(env, base)
            r["rerun"] = {**again, "seconds": round(secs, 2)}
            print(
                f"rerun: listed {again['listed']:,}, done {again['done']:,}, "
                f"enqueued {again['enqueued']:,} in {secs:.1f} s"
            )

            r["resume"] = await interrupted(storage, settings, env, resumed_base, m, n, outcomes)
            r["outcomes"] = dict(outcomes.counts)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runtime, 60)
            await clean(storage, settings, [base, resumed_base])
            await delete_queues(settings, list(queue_arguments(settings, APP)))
    return r


async def checkpoint(storage: S3Storage, bucket: str, key: str) -> str:
    """The key a backfill checkpoint says to continue after ('' if none)."""
    if await storage.head(bucket, key) is None:
        return ""
    after = orjson.loads(b"".join([c async for c in storage.stream(bucket, key)]))
    return str(after.get("start_after", ""))


async def interrupted(
    storage: S3Storage,
    settings: Settings,
    env: dict[str, str],
    base: str,
    m: int,
    first: int,
    outcomes: Outcomes,
) -> dict[str, Any]:
    """SIGINT a paced backfill once it has checkpointed a page; resume it; check every result."""
    await upload(storage, base, m, start=first)
    mark = settings.queues.checkpoint(FUNCTION, "backfill")
    since = outcomes.settled()
    proc = await asyncio.create_subprocess_exec(
        *command(base, "--json", "--rate", "500"), env=env, stdout=subprocess.PIPE
    )
    # The positive signal: its first checkpoint inside this prefix is in MinIO
    # (one page enqueued). A finished run leaves one too, with no key in it.
    deadline = time.perf_counter() + 120
    while not (await checkpoint(storage, settings.output_bucket, mark)).startswith(base):
        if time.perf_counter() > deadline or proc.returncode is not None:
            raise RuntimeError("the paced backfill never checkpointed")
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code = await proc.wait()
    resumed, secs = await run_backfill(env, base)
    wait = await wait_results(
        storage, settings.output_bucket, base, m, outcomes, since=since, timeout=max(600, m / 5)
    )
    wrong = await wrong_results(storage, settings.output_bucket, base, first, m)
    print(
        f"interrupted (exit {code}), resumed: listed {resumed['listed']:,} of {m:,}, "
        f"enqueued {resumed['enqueued']:,}; {m:,} results, {wrong} wrong"
    )
    if resumed["listed"] >= m:
        raise AssertionError("the resumed backfill started from the beginning")
    return {
        "interrupted_exit": code,
        "resumed_listed": resumed["listed"],
        "resumed_enqueued": resumed["enqueued"],
        "resumed_s": round(secs, 2),
        "results_after_s": round(wait, 1),
        "wrong": wrong,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--resume-objects", type=int, default=2_000)
    args = parser.parse_args()
    logs.configure("WARNING")
    r = asyncio.run(bench(args.objects, args.resume_objects))
    r["date"] = time.strftime("%Y-%m-%d %H:%M")
    (ROOT / "bench-backfill.json").write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2))
    ok = r["wrong"] == 0 and r["rerun"]["enqueued"] == 0 and r["resume"]["wrong"] == 0
    print(table(r))
    return 0 if ok else 1


def table(r: dict[str, Any]) -> str:
    res = r["resume"]
    rows = [
        ("objects (no event reached the runtime)", f"{r['objects']:,}"),
        ("upload", f"{r['upload_per_s']:,} objects/s"),
        ("listing (dry run: list + merge with results)", f"{r['listing_per_s']:,} objects/s"),
        ("enqueue (backfill run, list + merge + publish)", f"{r['enqueue_per_s']:,} objects/s"),
        (
            "backfill start → all results",
            f"{r['to_all_results_s']} s ({r['results_per_s']}/s), {r['wrong']} wrong",
        ),
        (
            "rerun",
            f"listed {r['rerun']['listed']:,}, done {r['rerun']['done']:,}, "
            f"enqueued {r['rerun']['enqueued']:,}",
        ),
        (
            "interrupted (SIGINT) and resumed",
            f"resumed run listed {res['resumed_listed']:,} of "
            f"{r['resume_objects']:,}, enqueued {res['resumed_enqueued']:,}; {res['wrong']} wrong",
        ),
        ("invocations", ", ".join(f"{k} {v:,}" for k, v in sorted(r["outcomes"].items()))),
        ("load average (1/5/15 min)", r["load_avg"]),
    ]
    lines = ["| backfill | measured |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
