"""The load scenarios: a steady load of objects with known counts, a fault in the middle.

Each uploads under a prefix of its own, so its records, versions and letters are
told apart from every other scenario's and from anything else on the stack.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from functions import app
from functions.lake.demo import generate
from tests.faults.effects import Writes, extra_letters, letter_source, letters, writes
from tests.faults.load import OUTPUT, Expect, Item, Verdict, rows, settle, upload
from tests.faults.stack import Stack
from tests.faults.table import Row

LAKE_EVERY = 25  # one object in this many is a raw orders file: a promotion to count


def _csv(i: int) -> tuple[bytes, int]:
    n = 1 + i % 7
    lines = [b"id,note"] + [f'{j},"row {j}\nspans lines"'.encode() for j in range(n)]
    return b"\n".join(lines) + b"\n", n


def _lake(tag: str, i: int) -> list[Item]:
    """A raw orders file, its to_staging result and the to_curated result of what it promotes."""
    body, want = generate(rows=40, bad_fraction=0.1, duplicates=2, seed=i)
    raw = f"orders/{tag}/{i:05d}.csv"
    counts = (want.read, want.written, want.rejected, want.duplicates)
    staged = Item(
        bucket="raw",
        key=raw,
        body=body,
        function="to_staging",
        expect=Expect.result(
            "staged counts",
            lambda out: (out["read"], out["written"], out["rejected"], out["duplicates"]) == counts,
        ),
    )
    curated = Item(
        bucket="staging",
        key=f"orders/{tag}/{i:05d}.parquet",
        body=b"",
        upload=False,
        function="to_curated",
        expect=Expect.result("partial folded", lambda out: out["skipped"] is None),
    )
    return [staged, curated]


def objects(tag: str, n: int, *, lake: bool = False) -> list[Item]:
    """``n`` uploads under ``uploads/<tag>/`` (and ``raw/orders/<tag>/`` if ``lake``)."""
    items: list[Item] = []
    for i in range(n):
        if lake and i % LAKE_EVERY == LAKE_EVERY - 1:
            items.extend(_lake(tag, i))
            continue
        body, count = _csv(i)
        items.append(
            Item(
                bucket="job-inputs",
                key=f"uploads/{tag}/{i:05d}.csv",
                body=body,
                function="csv_row_count",
                expect=rows(count),
            )
        )
    return items


def side_effects(stack: Stack, tag: str) -> Writes:
    """Every version a scenario's outputs left: records, promotions, partials."""
    s3 = stack.s3
    total = Writes()
    for function in ("csv_row_count", "json_canonicalize", "to_staging", "to_curated"):
        root = "uploads" if function in {"csv_row_count", "json_canonicalize"} else "orders"
        total += writes(s3, OUTPUT, f"{function}/{root}/{tag}/")
    total += writes(s3, "staging", f"orders/{tag}/")
    total += writes(s3, "staging", f"_rejected/orders/{tag}/")
    return total + writes(s3, "curated", f"orders/_partials/{tag}/")


@dataclass(slots=True)
class Clock:
    """When the fault began and when the system was whole again (epoch seconds)."""

    fault: float = 0.0
    healed: float = 0.0
    notes: list[str] = field(default_factory=list)


def conclude(
    stack: Stack,
    name: str,
    tag: str,
    items: list[Item],
    verdicts: list[Verdict],
    clock: Clock,
    extra: str = "",
) -> Row:
    """Count what a scenario's items came to, and what they wrote."""
    effects = side_effects(stack, tag)

    mine = [e for e in letters(stack.settings, app) if f"/{tag}/" in letter_source(e)]
    uploaded = [v for v in verdicts if v.item.upload]
    refused = [i for i in items if i.refused]
    derived = [v for v in verdicts if not v.item.upload]
    landed = [v.landed for v in verdicts if v.landed is not None]
    last = max(landed, default=clock.healed)
    problems = tuple(
        f"{v.item.bucket}/{v.item.key}: {v.detail}" for v in verdicts if not v.correct
    )[:10]
    notes = [
        *clock.notes,
        f"{len(derived)} promotions, each folded by to_curated" if derived else "",
        f"{effects.redone} runs redone (their history entry rewritten)" if effects.redone else "",
        f"{len(refused)} uploads failed" if refused else "",
        f"{effects.rewrites} identical rewrites" if effects.rewrites else "",
        f"{len(mine)} dead letters" if mine else "",
        extra,
    ]
    return Row(
        scenario=name,
        # Objects are uploads; a promotion's own result (to_curated's) is not one,
        # but if it is missing or wrong it counts as lost or wrong all the same.
        objects=len(uploaded) + len(refused),
        results=sum(v.landed is not None for v in uploaded),
        # An upload the fault made fail for good is lost too: its user's file is not in.
        lost=sum(v.landed is None for v in verdicts) + len(refused),
        wrong=sum(v.landed is not None and not v.correct for v in verdicts),
        duplicated=effects.duplicated + extra_letters(mine),
        writes=effects.versions + len(mine),
        recovered_s=max(0.0, last - max(clock.healed, clock.fault)),
        notes="; ".join(n for n in notes if n),
        problems=problems + tuple(f"duplicated: {k}" for k in effects.duplicated_keys[:5]),
    )


def under_fault(
    stack: Stack,
    name: str,
    fault: Callable[[Stack, Clock], None],
    *,
    slug: str,
    objects_n: int,
    rate: float,
    at: int,
    timeout: float,
    lake: bool = False,
) -> Row:
    """Upload ``objects_n`` at ``rate``/s, run ``fault`` after ``at`` uploads, judge all.

    ``name`` heads the table's row; ``slug`` names the scenario's key prefix.
    """
    tag = f"faults-{slug}-{uuid.uuid4().hex[:8]}"
    items = objects(tag, objects_n, lake=lake)
    clock = Clock()
    done = threading.Event()

    def inject() -> None:
        clock.fault = time.time()
        try:
            fault(stack, clock)
        finally:
            clock.healed = clock.healed or time.time()
            done.set()

    upload(stack.s3, items, rate, at={at: inject})
    # A slow machine stretches the fault (20 restarts at a load of 30 took 7 min):
    # wait for it, bounded, and say so in the row rather than abandon the row.
    finished = done.wait(max(timeout, 900.0))
    row = conclude(stack, name, tag, items, settle(stack.s3, items, timeout), clock)
    if finished:
        return row
    late = f"the fault was still running {max(timeout, 900.0):.0f} s after the load"
    return dataclasses.replace(row, problems=(*row.problems, late))


def restart_rabbitmq(stack: Stack, clock: Clock) -> None:
    """Stop RabbitMQ, leave it down 3 s, start it again."""
    stack.script("rabbitmq", "stop")
    time.sleep(3)
    stack.script("rabbitmq", "start")
    clock.healed = time.time()


def restart_minio(stack: Stack, clock: Clock) -> None:
    """Stop MinIO, leave it down 2 s, start it again."""
    stack.script("minio", "stop")
    time.sleep(2)
    stack.script("minio", "start")
    clock.healed = time.time()


def close_connections(stack: Stack, clock: Clock) -> None:
    """The broker closes every client connection at once (runtime's and MinIO's)."""
    stack.script("rabbitmq", "ctl", "close_all_connections", "fault injection")
    clock.healed = time.time()


def sigkills(kills: int) -> Callable[[Stack, Clock], None]:
    """SIGKILL the runtime ``kills`` times, each a moment after it became ready again."""

    def fault(stack: Stack, clock: Clock) -> None:
        rng = random.Random(15)
        restarts: list[float] = []
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.5))  # let it take work, then kill it mid-flight
            stack.kill_runtime()
            restarts.append(stack.start_runtime())
        clock.healed = time.time()
        clock.notes.append(
            f"{kills} SIGKILLs over {clock.healed - clock.fault:.0f} s, "
            f"restart to ready {min(restarts):.1f}-{max(restarts):.1f} s"
        )

    return fault
