"""``make faults``: faults injected into the local stack while it works, and what they cost.

Run ``make up`` first (the default, fast profile). Each load scenario uploads
objects with known outcomes under a prefix of its own at a steady rate, injects
its fault mid-load, then waits for every record and judges it; the hostile
scenario sends the corpus of :mod:`tests.faults.corpus`. The output bucket and
the lake's staging and curated buckets are versioned while the suite runs, so
every write is counted (see :mod:`tests.faults.effects`). The table says, per
scenario: objects, results, lost, wrong, duplicated side effects, writes, and
the time from the end of the fault to the last outcome. It exits 1 if any row
lost, got wrong or duplicated anything. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable

from tests.faults import scenarios
from tests.faults.hostile import hostile
from tests.faults.stack import Stack, versioned
from tests.faults.table import Row, render

VERSIONED = ("job-outputs", "staging", "curated")


def _plan(args: argparse.Namespace) -> dict[str, Callable[[Stack], Row]]:
    load = functools.partial(
        scenarios.under_fault,
        objects_n=args.objects,
        rate=args.rate,
        at=args.objects // 3,
        timeout=args.timeout,
    )
    return {
        "sigkill": lambda s: scenarios.under_fault(
            s,
            f"runtime SIGKILLed {args.kills} times during a load",
            scenarios.sigkills(args.kills),
            slug="sigkill",
            objects_n=args.kill_objects,
            rate=args.kill_rate,
            at=50,
            timeout=args.timeout,
            lake=True,
        ),
        "rabbitmq-restart": lambda s: load(
            s,
            "RabbitMQ stopped and started mid-load",
            scenarios.restart_rabbitmq,
            slug="rabbitmq-restart",
        ),
        "minio-restart": lambda s: load(
            s, "MinIO stopped and started mid-load", scenarios.restart_minio, slug="minio-restart"
        ),
        "close-connections": lambda s: load(
            s,
            "the broker closes every connection mid-load (`close_all_connections`)",
            scenarios.close_connections,
            slug="close-connections",
        ),
        "hostile": lambda s: hostile(s, rate=args.hostile_rate, timeout=args.timeout),
    }


def main() -> int:
    """Run the scenarios and print the table; non-zero if anything was lost, wrong or doubled."""
    parser = argparse.ArgumentParser(prog="make faults")
    parser.add_argument("--objects", type=int, default=300, help="per restart scenario")
    parser.add_argument("--rate", type=float, default=50.0, help="uploads/s, restart scenarios")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-objects", type=int, default=1000)
    parser.add_argument("--kill-rate", type=float, default=5.0, help="uploads/s while killing")
    parser.add_argument("--hostile-rate", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=240.0, help="per scenario, after load")
    parser.add_argument("scenarios", nargs="*", help="a subset, by name (default: all)")
    args = parser.parse_args()
    plan = _plan(args)
    chosen = args.scenarios or list(plan)
    unknown = set(chosen) - plan.keys()
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {list(plan)}")
    stack = Stack()
    stack.wait_ready(30)
    t0 = time.monotonic()
    load_before = os.getloadavg()
    rows = []
    with versioned(stack.s3, VERSIONED):
        for name in chosen:
            print(f"{name}…", flush=True)
            rows.append(plan[name](stack))
            print(render(rows[-1:]), flush=True)
    load_after = os.getloadavg()
    print(f"\n{render(rows)}\n")
    print(
        f"{time.monotonic() - t0:.0f} s in all; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after, on {os.cpu_count()} cores"
    )
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
