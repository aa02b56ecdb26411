"""``make cluster-faults``: scale-out proven on real clusters, on loopback.

Starts a three-node RabbitMQ cluster, a distributed MinIO (four servers, one
erasure set of 16 drives) and three runtime processes competing for the same
quorum queues, then runs one scenario after another, each a fresh load of
objects with its fault injected after a third of the uploads:

- ``runtime-kill``: one of the three runtimes is SIGKILLed (and started again afterwards);
- ``rabbitmq-kill``: RabbitMQ node 1 (the queues' leader, MinIO's target) is SIGKILLed
  and booted again;
- ``minio-kill``: MinIO server 4 is SIGKILLed (and started again afterwards).

Prints the table (objects, results, lost, duplicated, redelivered runs, time to
recover, peak concurrency per process and across them) and exits non-zero on any
loss, duplicate, or a process over its concurrency limit. Everything it started
is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from runtime.core.names import Queues
from tests.cluster import stack
from tests.cluster.load import FUNCTION, Load, Row


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops everything


def _bounce_rabbitmq() -> None:
    stack.script("cluster-rabbitmq", "kill", "1")
    stack.script("cluster-rabbitmq", "restart", "1")


def _scenarios(
    runtimes: stack.Runtimes,
) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """Per scenario: the fault, and what makes the stack whole again afterwards."""
    return {
        "runtime-kill": (lambda: runtimes.kill(3), lambda: runtimes.start(3)),
        "rabbitmq-kill": (_bounce_rabbitmq, lambda: runtimes.wait_ready(1)),
        "minio-kill": (
            lambda: stack.script("cluster-minio", "kill", "4"),
            lambda: stack.script("cluster-minio", "restart", "4"),
        ),
    }


def _table(rows: list[Row]) -> str:
    head = (
        "| scenario | objects | results | lost | duplicated | redelivered runs "
        "| fault → last result | last upload → last result | peak in flight per process "
        "| peak across processes |"
    )
    lines = [head, "| " + " | ".join(["---"] * 10) + " |"]
    for r in rows:
        peaks = ", ".join(str(p) for _, p in sorted(r.peaks.items()))
        cells = (
            r.scenario,
            r.objects,
            r.results,
            r.lost,
            r.duplicated,
            r.reruns,
            f"{r.recovered_s:.1f} s",
            f"{r.drained_s:.1f} s",
            peaks,
            r.peak_all,
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make cluster-faults")
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="uploads per second")
    parser.add_argument("--timeout", type=float, default=600.0, help="per scenario, after load")
    parser.add_argument(
        "scenarios", nargs="*", default=["runtime-kill", "rabbitmq-kill", "minio-kill"]
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    state = Path(os.environ.get("BUCKETFN_STATE", str(stack.ROOT / ".state")))
    runtimes = stack.Runtimes(logs=state / "cluster/runtime")
    scenarios = _scenarios(runtimes)
    unknown = set(args.scenarios) - set(scenarios)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    rows: list[Row] = []
    began = time.monotonic()
    try:
        stack.script("cluster-rabbitmq", "start")
        stack.script("cluster-minio", "start")
        stack.init()
        queue = Queues("bucketfn").function(FUNCTION)
        print(f"{queue}: a quorum queue with members on {stack.replicas(queue)} nodes", flush=True)
        runtimes.start_all()
        endpoints = [stack.s3_endpoint(n) for n in range(1, 5)]
        for name in args.scenarios:
            fault, heal = scenarios[name]
            print(f"{name}: {args.objects} objects at {args.rate:g}/s…", flush=True)
            load = Load(endpoints, args.objects, args.rate)
            fault_at, load_end = load.run(fault)
            load.wait(args.timeout)
            rows.append(load.account(name, fault_at, load_end))
            heal()
    finally:
        runtimes.stop_all()
        for name in ("cluster-minio", "cluster-rabbitmq"):
            try:
                stack.script(name, "stop")
            except Exception as exc:
                print(f"{name} stop failed: {exc}", file=sys.stderr)
        # Even when interrupted: the rows measured so far.
        print()
        print(_table(rows))
        load1, load5, _ = os.getloadavg()
        print(
            f"\ntotal {time.monotonic() - began:.0f} s; load average {load1:.1f} (1 min), "
            f"{load5:.1f} (5 min) on {os.cpu_count()} cores; per-process limit "
            f"BUCKETFN_PREFETCH={stack.PREFETCH}",
            flush=True,
        )
    over = [r for r in rows if any(p > stack.PREFETCH for p in r.peaks.values())]
    return 0 if rows and all(r.ok for r in rows) and not over else 1


if __name__ == "__main__":
    sys.exit(main())
