"""A realistic ``orders`` CSV, uploaded to the raw layer: ``python -m functions.lake.demo``.

The file is seeded, so the same options make the same bytes. It has bad rows
(missing customer, impossible or garbled dates, negative or garbage amounts,
unknown currencies and statuses), repeated order ids, and a free-text ``note``
column — not in the contract, so staging drops it — whose values hold commas,
quotes and newlines. What staging and curated should make of it is known
while the file is written, and printed beside the key.

::

    python -m functions.lake.demo --rows 10000 --bad-fraction 0.05 --duplicates 100
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO

import orjson

from runtime import open_storage

__all__ = ["HEADER", "Expected", "generate", "main", "write_orders"]

HEADER = ("order_id", "customer_id", "order_date", "amount", "currency", "status", "note")
_CURRENCIES = ("EUR", "USD", "GBP")
_STATUSES = ("placed", "shipped", "cancelled", "returned")
_NOTES = (
    "",
    "",
    "",
    "leave at the door",
    "gift wrap, please",
    'customer said "urgent"',
    "deliver after 6pm\nring twice",
    "split shipment, 2 boxes\nsecond box, next week",
)
_BAD = {
    "missing customer": ("customer_id", ""),
    "impossible date": ("order_date", "2024-02-30"),
    "garbled date": ("order_date", "31/12/2024"),
    "negative amount": ("amount", "-12.50"),
    "garbage amount": ("amount", "12,50 EUR"),
    "unknown currency": ("currency", "JPY"),
    "unknown status": ("status", "lost"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """What the raw → staging → curated steps should report for the generated file."""

    read: int
    written: int
    rejected: int
    duplicates: int
    totals: dict[str, Decimal]
    """Sum of ``amount`` of the written, not cancelled orders, per currency."""


def write_orders(
    out: IO[str], *, rows: int, bad_fraction: float, duplicates: int, seed: int = 1
) -> Expected:
    """Write the CSV to ``out`` (a text file opened with ``newline=""``), streamed."""
    if not 0 <= bad_fraction <= 1 or duplicates < 0 or rows < 1:
        raise ValueError("need rows >= 1, 0 <= bad-fraction <= 1, duplicates >= 0")
    rng = random.Random(seed)  # noqa: S311 - test data must be reproducible, not secret
    # Row 0 is always valid, so a duplicate always has an earlier order to repeat.
    positions = list(range(1, rows))
    rng.shuffle(positions)
    dup_at = set(positions[: min(duplicates, rows - 1)])
    bad_at = set(positions[len(dup_at) : len(dup_at) + round(bad_fraction * rows)])
    customers = [f"C-{n:05d}" for n in range(max(5, rows // 20))]
    start = date(2024, 6, 1)
    valid: list[list[str]] = []
    totals: dict[str, Decimal] = {}
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in range(rows):
        if i in dup_at:
            row = list(rng.choice(valid))
            row[5] = rng.choice(_STATUSES)  # a later update of the order: the first one wins
            row[6] = rng.choice(_NOTES)
            writer.writerow(row)
            continue
        row = [
            f"O-{seed}-{i:08d}",
            rng.choice(customers),
            (start + timedelta(days=rng.randrange(30))).isoformat(),
            f"{rng.randrange(500, 50_000) / 100:.2f}",
            rng.choices(_CURRENCIES, weights=(6, 3, 1))[0],
            rng.choices(_STATUSES, weights=(5, 8, 2, 1))[0],
            rng.choice(_NOTES),
        ]
        if i in bad_at:
            column, value = _BAD[rng.choice(sorted(_BAD))]
            row[HEADER.index(column)] = value
        else:
            valid.append(row)
            if row[5] != "cancelled":
                totals[row[4]] = totals.get(row[4], Decimal(0)) + Decimal(row[3])
        writer.writerow(row)
    return Expected(
        read=rows,
        written=len(valid),
        rejected=len(bad_at),
        duplicates=len(dup_at),
        totals=dict(sorted(totals.items())),
    )


def generate(
    *, rows: int, bad_fraction: float = 0.05, duplicates: int = 0, seed: int = 1
) -> tuple[bytes, Expected]:
    """The CSV as bytes, with what it should come to."""
    out = io.StringIO(newline="")
    expected = write_orders(
        out, rows=rows, bad_fraction=bad_fraction, duplicates=duplicates, seed=seed
    )
    return out.getvalue().encode(), expected


async def _upload(key: str, body: bytes) -> None:
    async with open_storage() as storage:
        await storage.put("raw", key, body, content_type="text/csv")


def main(argv: list[str] | None = None) -> int:
    """Generate the file, upload it to ``raw``, print its key and the expected counts."""
    parser = argparse.ArgumentParser(prog="python -m functions.lake.demo", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000, help="data rows (default 10000)")
    parser.add_argument("--bad-fraction", type=float, default=0.05, help="share of bad rows")
    parser.add_argument("--duplicates", type=int, default=100, help="repeated order ids")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same file")
    args = parser.parse_args(argv)
    body, expected = generate(
        rows=args.rows, bad_fraction=args.bad_fraction, duplicates=args.duplicates, seed=args.seed
    )
    key = f"orders/{datetime.now(UTC).date().isoformat()}/orders-{args.seed}.csv"
    asyncio.run(_upload(key, body))
    report = {
        "uploaded": f"s3://raw/{key}",
        "bytes": len(body),
        "expected": {
            "read": expected.read,
            "written": expected.written,
            "rejected": expected.rejected,
            "duplicates": expected.duplicates,
            "amount_not_cancelled": {c: str(v) for c, v in expected.totals.items()},
        },
        "result": f"s3://job-outputs/to_staging/{key}/result.json",
    }
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
