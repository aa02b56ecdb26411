"""The medallion lake's raw → staging step: contracts, parsing, promotion (no servers)."""

from __future__ import annotations

import csv
import gzip
import io
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest

from functions.common.lines import MAX_LINE_BYTES
from functions.lake import staging as to_staging
from functions.lake.contracts import ORDERS, Column, Contract
from functions.lake.demo import generate
from functions.lake.rows import CsvRows, JsonLines
from functions.lake.stager import Stager
from runtime import ConfigError, InputError
from runtime.app.ledger import WRITE
from runtime.core.records import Result
from runtime.core.seams import ObjectInfo
from runtime.engine.outcome import Status
from runtime.testing import Harness, MemoryStorage

ROUTE = to_staging.router.routes[0]
HEADER = "order_id,customer_id,order_date,amount,currency,status\r\n"
GOOD = {
    "order_id": "O-1",
    "customer_id": "C-1",
    "order_date": "2024-06-01",
    "amount": "12.50",
    "currency": "EUR",
    "status": "placed",
}


def bad(**changes: object) -> str:
    row: dict[str, object] = {**GOOD, **changes}
    result = ORDERS.validate(row)
    assert isinstance(result, str), f"{changes} was accepted: {result}"
    return result


# -- contracts ---------------------------------------------------------------------------


def test_a_valid_row_is_typed_in_column_order() -> None:
    assert ORDERS.validate(GOOD) == (
        "O-1",
        "C-1",
        date(2024, 6, 1),
        Decimal("12.50"),
        "EUR",
        "placed",
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"customer_id": ""}, "customer_id: required but missing"),
        ({"customer_id": "   "}, "customer_id: required but missing"),
        ({"order_date": None}, "order_date: required but missing"),
        ({"order_date": "2024-02-30"}, "order_date: '2024-02-30' is not a valid date"),
        ({"order_date": "31/12/2024"}, "order_date: '31/12/2024' is not a date (YYYY-MM-DD)"),
        ({"order_date": "20240601"}, "order_date: '20240601' is not a date (YYYY-MM-DD)"),
        ({"amount": "abc"}, "amount: 'abc' is not a decimal number"),
        ({"amount": "12,50"}, "amount: '12,50' is not a decimal number"),
        ({"amount": "NaN"}, "amount: 'NaN' is not a decimal number"),
        ({"amount": "1e3"}, "amount: '1e3' is not a decimal number"),
        ({"amount": "-0.01"}, "amount: '-0.01' is below the minimum 0"),
        ({"amount": "1.005"}, "amount: '1.005' has more than 2 decimal places"),
        ({"amount": "1" * 17}, "has more than 16 integer digits"),
        ({"amount": True}, "amount: True is not a decimal number"),
        ({"currency": "JPY"}, "currency: 'JPY' is not one of EUR, GBP, USD"),
        ({"currency": "eur"}, "currency: 'eur' is not one of EUR, GBP, USD"),
        ({"status": "lost"}, "status: 'lost' is not one of cancelled, placed, returned, shipped"),
        ({"order_id": 7}, "order_id: 7 is not text"),
    ],
)
def test_each_bad_value_has_a_clear_reason(changes: dict[str, object], reason: str) -> None:
    assert reason in bad(**changes)


def test_every_bad_column_is_named() -> None:
    assert bad(customer_id="", currency="JPY") == (
        "customer_id: required but missing; currency: 'JPY' is not one of EUR, GBP, USD"
    )


def test_optional_columns_may_be_empty_and_json_numbers_are_accepted() -> None:
    row = ORDERS.validate({**GOOD, "amount": 12.5, "currency": "", "status": None})
    assert row == ("O-1", "C-1", date(2024, 6, 1), Decimal("12.50"), None, None)
    assert ORDERS.validate({**GOOD, "amount": 3}) == ORDERS.validate({**GOOD, "amount": "3.00"})


def test_other_kinds() -> None:
    contract = Contract(
        dataset="events",
        columns=(
            Column(name="id", kind="int", required=True, minimum=Decimal(1)),
            Column(name="at", kind="timestamp"),
            Column(name="ok", kind="bool"),
            Column(name="score", kind="float"),
        ),
        key=("id",),
    )
    assert contract.validate(
        {"id": "7", "at": "2024-06-01T12:00:00+02:00", "ok": "TRUE", "score": "1.5e2"}
    ) == (7, datetime(2024, 6, 1, 10, tzinfo=UTC), True, 150.0)
    assert contract.validate({"id": 7, "ok": False, "score": 2}) == (7, None, False, 2.0)
    reasons: dict[str, tuple[list[object], list[str]]] = {
        "id": (["1_000", "x", "0", 2**63], ["not an integer", "below the minimum", "64 bits"]),
        "at": (["2024-06-01T12:00:00", "noon"], ["no UTC offset", "not an ISO 8601"]),
        "ok": (["maybe"], ["not a boolean"]),
        "score": (["inf", "nan", "1,5"], ["not a number"]),
    }
    for column, (values, fragments) in reasons.items():
        for value in values:
            result = contract.validate({"id": "1", column: value})
            assert isinstance(result, str)
            assert result.startswith(f"{column}: ")
            assert any(f in result for f in fragments), result
    assert str(contract.schema()) == (
        "id: int64 not null\nat: timestamp[us, tz=UTC]\nok: bool\nscore: double"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Contract(dataset="x", columns=(Column(name="a", kind="string"),), key=("a",)),
        lambda: Contract(dataset="x", columns=(), key=()),
        lambda: Contract(dataset="Bad-Name", columns=(), key=()),
        lambda: Column(name="a", kind="int", allowed=frozenset({"1"})),
        lambda: Column(name="a", kind="string", minimum=Decimal(0)),
        lambda: Column(name="a", kind="decimal", precision=40),
    ],
)
def test_contract_mistakes_fail_at_import(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()


# -- incremental readers -----------------------------------------------------------------


def test_csv_records_match_the_csv_module_at_every_split() -> None:
    data = (
        '\ufeffid,note\r\n1,"multi\nline, with comma"\r\n\r\n2,plain\n3,"q ""x"""\r4,"a\r\nb"\r\n'
        "5,ü日本\r\n6,last"
    ).encode()
    expected = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) if r]
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
        reader, got, start = CsvRows(), [], 0
        for cut in [*cuts, len(data)]:
            got += reader.feed(data[start:cut])
            start = cut
        got += reader.finish()
        assert [r for _, r in got] == expected
    assert [line for line, _ in got] == [1, 2, 5, 6, 7, 9, 10]


@pytest.mark.parametrize(
    ("data", "message", "where"),
    [
        (b'a,b\n1,"x\n2,3\n', "unterminated quoted field", "line 2"),
        (b'a\n1\n"x"y\n', "malformed CSV", "line 3"),
        (b"a\n1\n\xff\n", "not UTF-8 text", "byte 4"),
        (b"a\n" + "é".encode()[:1], "not UTF-8 text", "byte 2"),
    ],
)
def test_broken_csv_says_where(data: bytes, message: str, where: str) -> None:
    def byte_by_byte() -> None:  # positions must not depend on how the data is chunked
        reader = CsvRows()
        for i in range(len(data)):
            reader.feed(data[i : i + 1])
        reader.finish()

    with pytest.raises(InputError) as info:
        byte_by_byte()
    assert message in info.value.reason
    assert info.value.where == where


def test_json_lines_numbered_across_chunks() -> None:
    reader = JsonLines()
    got = reader.feed(b'{"a":1}\n\n{"b"') + reader.feed(b":2}\r\n  \n{}") + reader.finish()
    assert got == [(1, '{"a":1}'), (3, '{"b":2}\r'), (5, "{}")]


@pytest.mark.parametrize("reader", [CsvRows, JsonLines])
def test_line_limit_counts_bytes_not_characters(reader: Callable[[], CsvRows | JsonLines]) -> None:
    # 1 Mi characters, 3 bytes each but the commas; fields stay under csv's size limit.
    chunk = ("€" * 65535 + ",").encode() * 16
    within, over = reader(), reader()
    for _ in range(5):  # 5 Mi characters, just under 15 MiB
        within.feed(chunk)
        over.feed(chunk)
    assert [line for line, _ in within.feed(b"\n")] == [1]
    with pytest.raises(InputError) as info:
        over.feed(chunk)  # 6 Mi characters (fewer than 8 Mi), 18 MiB
    assert info.value.reason == f"line longer than {MAX_LINE_BYTES} bytes"


# -- raw → staging -----------------------------------------------------------------------

SAMPLE = (
    HEADER
    + "O-1,C-1,2024-06-01,10.00,EUR,placed\r\n"
    + '"O-2","C-2, Ltd.\nBerlin",2024-06-01,5.5,USD,shipped\r\n'  # quoted comma and newline
    + "O-3,,2024-06-02,1.00,EUR,placed\r\n"  # missing customer
    + "O-4,C-1,2024-06-31,1.00,EUR,placed\r\n"  # bad date
    + "O-1,C-9,2024-06-03,99.00,GBP,placed\r\n"  # duplicate of line 2
    + "O-5,C-1,2024-06-02,-3,EUR,placed\r\n"  # negative amount
    + "O-6,C-3,2024-06-02,7.25,JPY,returned\r\n"  # unknown currency
    + "\r\n"
    + "O-7,C-3,2024-06-02,abc,EUR,cancelled\r\n"  # garbage amount
    + "O-8,C-3,2024-06-02,2.00,GBP,cancelled,extra\r\n"  # one field too many
    + "O-9,C-3,2024-06-04,0,GBP,cancelled\r\n"
).encode()


async def stage(h: Harness, data: bytes, key: str) -> Result:
    return await h.run(ROUTE, data, key=key, bucket="raw")


def parquet(h: Harness, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(h.storage.objects[("staging", key)].data))


def rejects(h: Harness, key: str) -> list[dict[str, object]]:
    data = h.storage.objects[("staging", key)].data
    return [orjson.loads(line) for line in data.splitlines()]


async def test_csv_is_validated_deduplicated_and_promoted() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    result = await stage(h, SAMPLE, "orders/2024-06/day 1.csv")
    assert result.output == {
        "dataset": "orders",
        "read": 10,
        "written": 3,
        "rejected": 6,
        "duplicates": 1,
        "staging_key": "orders/2024-06/day 1.parquet",
        "rejected_key": "_rejected/orders/2024-06/day 1.jsonl",
        "ignored_columns": [],
    }
    assert result.outputs == (
        "s3://staging/_rejected/orders/2024-06/day 1.jsonl",
        "s3://staging/orders/2024-06/day 1.parquet",
    )
    table = parquet(h, "orders/2024-06/day 1.parquet")
    assert table.schema.equals(ORDERS.schema())
    assert table.schema.field("amount").type == pa.decimal128(18, 2)
    assert table.schema.field("order_date").type == pa.date32()
    assert [tuple(r.values()) for r in table.to_pylist()] == [
        ("O-1", "C-1", date(2024, 6, 1), Decimal("10.00"), "EUR", "placed"),
        ("O-2", "C-2, Ltd.\nBerlin", date(2024, 6, 1), Decimal("5.50"), "USD", "shipped"),
        ("O-9", "C-3", date(2024, 6, 4), Decimal("0.00"), "GBP", "cancelled"),
    ]
    lines = rejects(h, "_rejected/orders/2024-06/day 1.jsonl")
    assert [(r["line"], str(r["reason"]).split(":")[0]) for r in lines] == [
        (5, "customer_id"),
        (6, "order_date"),
        (7, "duplicate order_id"),
        (8, "amount"),
        (9, "currency"),
        (11, "amount"),
        (12, "expected 6 fields, got 7"),
    ]
    assert lines[0]["row"] == dict(
        zip(ORDERS.names, ["O-3", "", "2024-06-02", "1.00", "EUR", "placed"], strict=True)
    )
    assert lines[-1]["row"] == {
        **dict(
            zip(ORDERS.names, ["O-8", "C-3", "2024-06-02", "2.00", "GBP", "cancelled"], strict=True)
        ),
        "_extra": ["extra"],
    }


async def test_promoted_objects_carry_lineage_and_counts() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    await stage(h, SAMPLE, "orders/a.csv")
    meta = h.storage.objects[("staging", "orders/a.parquet")].metadata
    assert meta["bucketfn-function"] == "to_staging"
    assert meta["bucketfn-source-bucket"] == "raw"
    assert meta["bucketfn-source-key"] == "orders/a.csv"
    assert meta["bucketfn-source-revision"] == h.storage.objects[("raw", "orders/a.csv")].version_id
    assert meta["bucketfn-function-version"] == ROUTE.version
    assert meta["bucketfn-contract"] == ORDERS.fingerprint
    assert (meta["bucketfn-rows-read"], meta["bucketfn-rows-written"]) == ("10", "3")
    assert (meta["bucketfn-rows-rejected"], meta["bucketfn-rows-duplicate"]) == ("6", "1")
    rejects = h.storage.objects[("staging", "_rejected/orders/a.jsonl")].metadata
    # The same stamp, but for the id of each promotion's own write (runtime.app.ledger).
    assert {k: v for k, v in rejects.items() if k != WRITE} == {
        k: v for k, v in meta.items() if k != WRITE
    }


async def test_gzip_and_json_lines_give_the_same_rows() -> None:
    h = Harness()
    plain = await stage(h, SAMPLE, "orders/p.csv")
    zipped = await stage(h, gzip.compress(SAMPLE), "orders/z.csv.gz")
    assert zipped.output["staging_key"] == "orders/z.parquet"
    assert {k: zipped.output[k] for k in ("read", "written", "rejected", "duplicates")} == {
        k: plain.output[k] for k in ("read", "written", "rejected", "duplicates")
    }
    assert parquet(h, "orders/z.parquet").equals(parquet(h, "orders/p.parquet"))

    docs = [
        {**GOOD, "order_id": "J-1", "amount": 12.5, "extra": 1},
        {**GOOD, "order_id": "J-2", "customer_id": None},
        {**GOOD, "order_id": "J-1"},
        {**GOOD, "order_id": "J-3", "currency": "USD", "amount": "1"},
    ]
    body = b"\n".join(orjson.dumps(d) for d in docs) + b'\n\n[1]\n{"order_id": \n'
    result = await stage(h, body, "orders/j.jsonl")
    assert {k: result.output[k] for k in ("read", "written", "rejected", "duplicates")} == {
        "read": 6,
        "written": 2,
        "rejected": 3,
        "duplicates": 1,
    }
    assert result.output["ignored_columns"] == ["extra"]
    table = parquet(h, "orders/j.parquet")
    assert table["order_id"].to_pylist() == ["J-1", "J-3"]
    assert table["amount"].to_pylist() == [Decimal("12.50"), Decimal("1.00")]
    reasons = [str(r["reason"]) for r in rejects(h, "_rejected/orders/j.jsonl")]
    assert reasons[0] == "customer_id: required but missing"
    assert reasons[1].startswith("duplicate order_id")
    assert reasons[2] == "not a JSON object"
    assert reasons[3].startswith("invalid JSON")


async def test_reprocessing_a_source_replaces_its_staging_file() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    await stage(h, SAMPLE, "orders/r.csv")
    smaller = HEADER.encode() + b"O-1,C-1,2024-06-01,1.00,EUR,placed\n"
    result = await stage(h, smaller, "orders/r.csv")
    assert result.output["written"] == 1
    staged = sorted(k for b, k in h.storage.objects if b == "staging")
    assert staged == ["_rejected/orders/r.jsonl", "orders/r.parquet"]
    assert parquet(h, "orders/r.parquet").num_rows == 1
    assert rejects(h, "_rejected/orders/r.jsonl") == []


async def test_extra_columns_are_ignored_and_reported() -> None:
    h = Harness()
    body, expected = generate(rows=200, bad_fraction=0.1, duplicates=10, seed=3)
    result = await stage(h, body, "orders/demo.csv")
    assert result.output["ignored_columns"] == ["note"]
    assert (result.output["written"], result.output["rejected"]) == (
        expected.written,
        expected.rejected,
    )
    assert result.output["duplicates"] == expected.duplicates


@pytest.mark.parametrize(
    ("key", "data", "message"),
    [
        ("invoices/a.csv", HEADER.encode(), "unknown dataset 'invoices'"),
        ("a.csv", HEADER.encode(), "must start with '<dataset>/'"),
        ("orders/a.csv", b"order_id,amount\n1,2\n", "lacks required columns"),
        ("orders/a.csv", b"", "no header"),
        ("orders/a.csv", HEADER.encode() + b'O-1,"C-1\n', "unterminated quoted field"),
        ("orders/a.csv", HEADER.encode() + b"O-1,C\xe9-1\n", "not UTF-8"),
        ("orders/a.csv.gz", gzip.compress(SAMPLE)[:-20], "gzip"),
    ],
)
async def test_unusable_files_are_permanent_input_errors(
    key: str, data: bytes, message: str
) -> None:
    h = Harness()
    with pytest.raises(InputError, match=message):
        await stage(h, data, key)
    assert not [k for b, k in h.storage.objects if b == "staging"]


def test_missing_columns_error_says_which() -> None:
    with pytest.raises(InputError) as info:
        ORDERS.bind(["order_id", "amount"])
    assert info.value.reason == (
        "header lacks required columns ['customer_id', 'order_date'] of dataset 'orders'"
    )
    assert info.value.where == "line 1"


def test_stager_output_does_not_depend_on_chunking_or_batching() -> None:
    body, expected = generate(rows=3000, bad_fraction=0.05, duplicates=40, seed=9)

    def run(chunk: int, batch: int) -> tuple[list[dict[str, object]], bytes, int]:
        out, rej = io.BytesIO(), io.BytesIO()
        stager = Stager(
            ORDERS, form="csv", parquet=out, rejects=rej, batch_rows=batch, row_group_rows=batch * 2
        )
        for i in range(0, len(body), chunk):
            stager.feed(body[i : i + chunk])
        counts = stager.finish()
        assert (counts.read, counts.written) == (expected.read, expected.written)
        assert (counts.rejected, counts.duplicates) == (expected.rejected, expected.duplicates)
        out.seek(0)
        groups = pq.ParquetFile(out).metadata.num_row_groups
        out.seek(0)
        rows: list[dict[str, object]] = pq.read_table(out).to_pylist()
        return rows, rej.getvalue(), groups

    whole = run(len(body), 100_000)
    pieces = run(777, 500)
    assert pieces[:2] == whole[:2]
    assert (whole[2], pieces[2]) == (1, 3)


class Overtaken(MemoryStorage):
    """A newer version of the source lands while the function is running."""

    heads = 0

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        info = await super().head(bucket, key)
        if bucket == "raw" and info is not None:
            self.heads += 1
            if self.heads > 1:  # the worker's check passes; the function's own does not
                return ObjectInfo(bucket=bucket, key=key, etag="newer", version_id="v-newer")
        return info


async def test_a_run_overtaken_by_a_newer_source_writes_nothing() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    h.storage = Overtaken(frozenset({"raw"}))
    h.storage.put_bytes("raw", "orders/o.csv", SAMPLE)
    outcome = await h.deliver(ROUTE, h.event("raw", "orders/o.csv"))
    assert outcome.status is Status.SUPERSEDED
    assert not [k for b, k in h.storage.objects if b != "raw"]
