"""The medallion lake's staging → curated step: partials and totals (no servers)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from functions.lake import curated as to_curated
from functions.lake import staging as to_staging
from runtime.core.names import result_key
from runtime.core.seams import Body, ObjectInfo
from runtime.engine.outcome import Outcome, Status
from runtime.testing import Harness, MemoryStorage

STAGE = to_staging.router.routes[0]
CURATE = to_curated.router.routes[0]
TOTAL = ("curated", "orders/daily_totals.parquet")
HEADER = b"order_id,customer_id,order_date,amount,currency,status\n"

DAY1 = HEADER + (
    b"A-1,C-1,2024-06-01,10.00,EUR,placed\n"
    b"A-2,C-1,2024-06-01,2.50,EUR,shipped\n"
    b"A-3,C-1,2024-06-01,100.00,EUR,cancelled\n"  # left out of the totals
    b"A-4,C-1,2024-06-01,1.00,USD,returned\n"
    b"A-5,C-2,2024-06-02,7.00,GBP,placed\n"
    b"A-5,C-2,2024-06-02,7.00,GBP,placed\n"  # duplicate: staged once
    b"A-6,,2024-06-02,7.00,GBP,placed\n"  # rejected
)
DAY2 = HEADER + (
    b"B-1,C-1,2024-06-01,0.10,EUR,placed\n"
    b"B-2,C-1,2024-06-01,0.20,EUR,placed\n"
    b"B-3,C-3,2024-06-03,5.00,USD,shipped\n"
)


def row(day: int, customer: str, currency: str, amount: str, orders: int) -> dict[str, object]:
    return {
        "order_date": date(2024, 6, day),
        "customer_id": customer,
        "currency": currency,
        "amount": Decimal(amount),
        "orders": orders,
    }


EXPECTED_DAY1 = [
    row(1, "C-1", "EUR", "12.50", 2),
    row(1, "C-1", "USD", "1.00", 1),
    row(2, "C-2", "GBP", "7.00", 1),
]
EXPECTED_BOTH = [
    row(1, "C-1", "EUR", "12.80", 4),  # 0.1 + 0.2 is exactly 0.3 here: decimals, not floats
    row(1, "C-1", "USD", "1.00", 1),
    row(2, "C-2", "GBP", "7.00", 1),
    row(3, "C-3", "USD", "5.00", 1),
]


async def stage(h: Harness, key: str, data: bytes) -> str:
    result = await h.run(STAGE, data, key=key, bucket="raw")
    staging_key: str = result.output["staging_key"]
    return staging_key


async def curate(h: Harness, staging_key: str) -> Outcome:
    outcome = await h.deliver(CURATE, h.event("staging", staging_key))
    assert outcome.status is Status.OK, outcome.error
    return outcome


def read(h: Harness, bucket: str, key: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(
        io.BytesIO(h.storage.objects[(bucket, key)].data)
    ).to_pylist()
    return rows


def curated_keys(h: Harness) -> list[str]:
    return sorted(k for b, k in h.storage.objects if b == "curated")


async def test_partial_and_total_of_one_file() -> None:
    h = Harness()
    staging_key = await stage(h, "orders/2024-06/day1.csv", DAY1)
    outcome = await curate(h, staging_key)
    assert outcome.result is not None
    assert outcome.result.output == {
        "dataset": "orders",
        "skipped": None,
        "partial_key": "orders/_partials/2024-06/day1.parquet",
        "total_key": "orders/daily_totals.parquet",
        "groups": 3,
        "partials": 1,
        "total_groups": 3,
        "rounds": 1,
    }
    assert outcome.result.outputs == (
        "s3://curated/orders/_partials/2024-06/day1.parquet",
        "s3://curated/orders/daily_totals.parquet",
    )
    assert read(h, "curated", "orders/_partials/2024-06/day1.parquet") == EXPECTED_DAY1
    assert read(h, *TOTAL) == EXPECTED_DAY1
    meta = h.storage.objects[TOTAL].metadata
    assert meta["bucketfn-function"] == "to_curated"
    assert meta["bucketfn-source-bucket"] == "staging"
    assert meta["bucketfn-source-key"] == staging_key
    assert (meta["bucketfn-partials"], meta["bucketfn-groups"]) == ("1", "3")


async def test_two_files_in_either_order_give_the_same_total() -> None:
    totals = []
    for order in (("day1", "day2"), ("day2", "day1")):
        h = Harness()
        keys = {
            "day1": await stage(h, "orders/day1.csv", DAY1),
            "day2": await stage(h, "orders/day2.csv", DAY2),
        }
        for name in order:
            await curate(h, keys[name])
        assert read(h, *TOTAL) == EXPECTED_BOTH
        totals.append(h.storage.objects[TOTAL].data)
    assert totals[0] == totals[1]  # byte for byte: the output is sorted


async def test_the_same_staging_file_twice_counts_once() -> None:
    h = Harness()
    key1 = await stage(h, "orders/day1.csv", DAY1)
    key2 = await stage(h, "orders/day2.csv", DAY2)
    await curate(h, key1)
    await curate(h, key2)
    before = h.storage.objects[TOTAL].data
    # A redelivery of the same event is skipped by the worker…
    again = await h.deliver(CURATE, h.event("staging", key1))
    assert again.status is Status.DUPLICATE
    # …and a real second run (its result record lost) replaces the partial, adds nothing.
    del h.storage.objects[(h.output_bucket, result_key("to_curated", key1))]
    await curate(h, key1)
    assert h.storage.objects[TOTAL].data == before
    assert read(h, *TOTAL) == EXPECTED_BOTH
    assert curated_keys(h) == [
        "orders/_partials/day1.parquet",
        "orders/_partials/day2.parquet",
        "orders/daily_totals.parquet",
    ]


async def test_a_reprocessed_source_replaces_its_contribution() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    key1 = await stage(h, "orders/day1.csv", DAY1)
    await curate(h, await stage(h, "orders/day2.csv", DAY2))
    await curate(h, key1)
    corrected = HEADER + b"A-1,C-1,2024-06-01,1.00,EUR,placed\n"
    assert await stage(h, "orders/day1.csv", corrected) == key1
    await curate(h, key1)
    assert read(h, *TOTAL) == [
        row(1, "C-1", "EUR", "1.30", 3),
        row(3, "C-3", "USD", "5.00", 1),
    ]


async def test_an_all_rejected_file_contributes_nothing() -> None:
    h = Harness()
    await curate(h, await stage(h, "orders/day2.csv", DAY2))
    await curate(h, await stage(h, "orders/bad.csv", HEADER + b"X-1,,2024-06-01,1,EUR,placed\n"))
    assert read(h, "curated", "orders/_partials/bad.parquet") == []
    assert read(h, *TOTAL) == [
        row(1, "C-1", "EUR", "0.30", 2),
        row(3, "C-3", "USD", "5.00", 1),
    ]


async def test_rejects_and_datasets_without_a_rollup_are_skipped() -> None:
    h = Harness()
    for key, why in [
        ("_rejected/orders/x.parquet", "rejected rows"),
        ("misc/x.parquet", "no rollup"),
    ]:
        h.storage.put_bytes("staging", key, b"not even parquet")
        outcome = await curate(h, key)
        assert outcome.result is not None
        assert outcome.result.output["skipped"] == why
        assert outcome.result.outputs == ()
    assert curated_keys(h) == []


class Racing(MemoryStorage):
    """Another invocation writes a partial each time this one writes the total."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    async def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        **conditions: Any,
    ) -> ObjectInfo:
        info = await super().put(
            bucket, key, body, content_type=content_type, metadata=metadata, **conditions
        )
        if (bucket, key) == TOTAL and self.races > 0:
            self.races -= 1
            partial = self.objects[("curated", "orders/_partials/day1.parquet")]
            self.put_bytes("curated", f"orders/_partials/other-{self.races}.parquet", partial.data)
        return info


async def test_a_partial_written_during_the_recompute_is_not_lost() -> None:
    h = Harness()
    h.storage = Racing(races=1)
    outcome = await curate(h, await stage(h, "orders/day1.csv", DAY1))
    assert outcome.result is not None
    assert (outcome.result.output["rounds"], outcome.result.output["partials"]) == (2, 2)
    doubled = [
        row(1, "C-1", "EUR", "25.00", 4),
        row(1, "C-1", "USD", "2.00", 2),
        row(2, "C-2", "GBP", "14.00", 2),
    ]
    assert read(h, *TOTAL) == doubled
    # The total was written twice; the result lists it once.
    assert outcome.result.outputs == (
        "s3://curated/orders/_partials/day1.parquet",
        "s3://curated/orders/daily_totals.parquet",
    )


async def test_partials_that_never_settle_ask_for_a_retry() -> None:
    h = Harness()
    h.storage = Racing(races=100)
    staging_key = await stage(h, "orders/day1.csv", DAY1)
    outcome = await h.deliver(CURATE, h.event("staging", staging_key))
    assert outcome.status is Status.RETRY
    assert outcome.error is not None
    assert "kept changing" in outcome.error.message


async def test_a_staging_object_that_is_not_parquet_is_a_permanent_error() -> None:
    h = Harness()
    h.storage.put_bytes("staging", "orders/broken.parquet", b"not parquet at all")
    outcome = await h.deliver(CURATE, h.event("staging", "orders/broken.parquet"))
    assert outcome.status is Status.DEAD_LETTER
    assert outcome.error is not None
    assert outcome.error.type == "runtime.InputError"
    assert "not a staging file of 'orders'" in outcome.error.message
    assert curated_keys(h) == []
