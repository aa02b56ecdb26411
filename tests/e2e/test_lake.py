"""The medallion lake on the real stack: raw CSV → staging Parquet → curated totals.

``curated/orders/daily_totals.parquet`` is one object shared by every test and
every run against this MinIO, so a test cannot expect it to hold only its own
rows. Each test's customer ids carry its unique tag instead, and totals are
grouped by customer: the total's rows for those customers are exactly this
test's contribution, whatever else the file holds, and checking them is immune
to other runs writing partials at the same time.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest

from functions.lake.contracts import ORDERS
from runtime.core.names import result_key
from tests.e2e.conftest import Stack
from tests.servers import unique

TOTAL_KEY = "orders/daily_totals.parquet"
Group = tuple[date, str, str]


def orders_csv(tag: str) -> tuple[bytes, dict[Group, tuple[Decimal, int]]]:
    """A CSV with bad rows, duplicates and quoted newlines; the totals it should make."""
    rows: list[list[str]] = []
    for i in range(60):
        customer = f"{tag}-C{i % 4}"
        day = f"2024-06-{1 + i % 3:02d}"
        currency = ("EUR", "USD", "GBP")[i % 3]
        status = ("placed", "shipped", "cancelled", "returned", "placed")[i % 5]
        rows.append([f"{tag}-O{i}", customer, day, f"{i + 1}.{i % 100:02d}", currency, status])
    rows[5][1] = f"{tag}-C1, Ltd.\nSecond line"  # quoted comma and newline: still valid
    bad = {
        10: (1, ""),  # missing customer
        11: (2, "2024-06-31"),  # no such date
        12: (3, "-4.00"),  # negative amount
        13: (3, "4,00"),  # garbage amount
        14: (4, "JPY"),  # unknown currency
    }
    for i, (col, value) in bad.items():
        rows[i][col] = value
    duplicates = [[*rows[0][:5], "cancelled"], list(rows[20]), list(rows[21])]
    expected: dict[Group, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    for i, r in enumerate(rows):
        if i not in bad and r[5] != "cancelled":
            group = (date.fromisoformat(r[2]), r[1], r[4])
            amount, count = expected[group]
            expected[group] = (amount + Decimal(r[3]), count + 1)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ORDERS.names)
    writer.writerows(rows[:30] + duplicates + rows[30:])
    return out.getvalue().encode(), dict(expected)


async def put_raw(stack: Stack, key: str, body: bytes) -> str:
    resp = await asyncio.to_thread(stack.s3.put_object, Bucket="raw", Key=key, Body=body)
    return resp["VersionId"]


async def get(stack: Stack, bucket: str, key: str) -> bytes:
    def fetch() -> bytes:
        return stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    return await asyncio.to_thread(fetch)


async def result_for(
    stack: Stack, function: str, key: str, revision: str, timeout: float = 60
) -> dict[str, Any]:
    """The result record of ``function`` for this revision of ``key``, once it is written."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc: dict[str, Any] = orjson.loads(
                await get(stack, "job-outputs", result_key(function, key))
            )
            source = doc["source"]
            if revision in (source["version_id"], source["etag"]):
                return doc
        except stack.s3.exceptions.NoSuchKey:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no {function} result for {key} at {revision} within {timeout} s")
        await asyncio.sleep(0.2)


async def totals_of(stack: Stack, tag: str) -> dict[Group, tuple[Decimal, int]]:
    """The shared total's rows for this test's customers."""
    table = pq.read_table(io.BytesIO(await get(stack, "curated", TOTAL_KEY)))
    return {
        (r["order_date"], r["customer_id"], r["currency"]): (r["amount"], r["orders"])
        for r in table.to_pylist()
        if r["customer_id"].startswith(tag)
    }


async def settled_totals(
    stack: Stack, tag: str, expected: dict[Group, tuple[Decimal, int]], timeout: float = 60
) -> dict[Group, tuple[Decimal, int]]:
    """Poll the shared total until it holds this test's groups (other runs may write it too)."""
    deadline = time.monotonic() + timeout
    got: dict[Group, tuple[Decimal, int]] = {}
    while time.monotonic() < deadline:
        try:
            got = await totals_of(stack, tag)
        except stack.s3.exceptions.NoSuchKey:
            got = {}
        if got == expected:
            return got
        await asyncio.sleep(0.3)
    return got


async def test_raw_csv_is_staged_and_curated_once_however_often_it_lands(stack: Stack) -> None:
    tag = unique("lake")
    key = f"orders/{tag}/orders.csv"
    staging_key = f"orders/{tag}/orders.parquet"
    body, expected = orders_csv(tag)

    v1 = await put_raw(stack, key, body)
    staged = await result_for(stack, "to_staging", key, v1)
    assert staged["status"] == "ok"
    assert staged["output"] == {
        "dataset": "orders",
        "read": 63,
        "written": 55,
        "rejected": 5,
        "duplicates": 3,
        "staging_key": staging_key,
        "rejected_key": f"_rejected/orders/{tag}/orders.jsonl",
        "ignored_columns": [],
    }
    assert staged["outputs"] == [
        f"s3://staging/_rejected/orders/{tag}/orders.jsonl",
        f"s3://staging/{staging_key}",
    ]

    table = pq.read_table(io.BytesIO(await get(stack, "staging", staging_key)))
    assert table.schema.equals(ORDERS.schema())
    assert table.num_rows == 55
    assert table.schema.field("amount").type == pa.decimal128(18, 2)
    assert f"{tag}-C1, Ltd.\nSecond line" in table["customer_id"].to_pylist()
    head = await asyncio.to_thread(stack.s3.head_object, Bucket="staging", Key=staging_key)
    meta = head["Metadata"]
    assert meta["bucketfn-source-revision"] == v1
    assert meta["bucketfn-source-key"] == key
    assert (meta["bucketfn-rows-written"], meta["bucketfn-rows-rejected"]) == ("55", "5")
    rejects = (await get(stack, "staging", f"_rejected/orders/{tag}/orders.jsonl")).splitlines()
    reasons = [orjson.loads(line)["reason"] for line in rejects]
    assert len(reasons) == 8
    assert sum(r.startswith("duplicate order_id") for r in reasons) == 3

    staging_etag = head["ETag"].strip('"')
    curated = await result_for(stack, "to_curated", staging_key, staging_etag)
    assert curated["status"] == "ok"
    assert curated["output"]["partial_key"] == f"orders/_partials/{tag}/orders.parquet"
    partial = pq.read_table(
        io.BytesIO(await get(stack, "curated", f"orders/_partials/{tag}/orders.parquet"))
    )
    assert {
        (r["order_date"], r["customer_id"], r["currency"]): (r["amount"], r["orders"])
        for r in partial.to_pylist()
    } == expected
    assert await settled_totals(stack, tag, expected) == expected

    # The same file again: a new version of the source, processed, and nothing doubles.
    v2 = await put_raw(stack, key, body)
    assert v2 != v1
    restaged = await result_for(stack, "to_staging", key, v2)
    assert restaged["output"] == staged["output"]
    head = await asyncio.to_thread(stack.s3.head_object, Bucket="staging", Key=staging_key)
    assert head["Metadata"]["bucketfn-source-revision"] == v2
    await result_for(stack, "to_curated", staging_key, head["ETag"].strip('"'))
    await stack.settle()  # any late event was sent before the sentinel's
    assert await totals_of(stack, tag) == expected
    listing = await asyncio.to_thread(
        stack.s3.list_objects_v2, Bucket="curated", Prefix=f"orders/_partials/{tag}/"
    )
    assert [o["Key"] for o in listing.get("Contents", [])] == [
        f"orders/_partials/{tag}/orders.parquet"
    ]


async def test_unknown_dataset_is_dead_lettered_without_retries(stack: Stack) -> None:
    key = f"{unique('nodataset').replace('-', '_')}/x.csv"
    version = await put_raw(stack, key, b"a,b\n1,2\n")
    result = await result_for(stack, "to_staging", key, version)
    assert result["status"] == "dead-lettered"
    assert result["attempts"] == 1
    assert result["error"]["type"] == "runtime.InputError"
    assert "unknown dataset" in result["error"]["message"]
