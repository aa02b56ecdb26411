"""Count the records of a CSV (or gzipped CSV) without loading it.

``rows`` are the non-blank RFC 4180 records after the header line (a newline
inside quotes does not end a record); ``columns`` are the header's fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypedDict

from functions.csv_count.error import CsvFormatError
from functions.csv_count.scanner import CsvCount, RecordCounter
from runtime import Context, InputError, ObjectEvent, Router, offload

router = Router()


class RowCount(TypedDict):
    """The function's output, stored in ``result.json``."""

    rows: int
    columns: list[str]
    bytes: int


@router.function(bucket="job-inputs", prefix="uploads/", suffix=(".csv", ".csv.gz"))
async def csv_row_count(event: ObjectEvent, ctx: Context) -> RowCount:
    """Stream the object through a quote-aware record counter."""
    stream: AsyncIterator[bytes] = ctx.read(event)
    if event.key.endswith(".gz"):
        stream = ctx.gunzip(stream)
    try:
        count = await count_records(stream)
    except CsvFormatError as exc:
        raise InputError(exc.reason, where=f"byte {exc.offset}") from exc
    return {"rows": count.rows, "columns": list(count.columns), "bytes": count.bytes}


async def count_records(stream: AsyncIterator[bytes]) -> CsvCount:
    """Count a stream of CSV chunks as the function does (the benchmark measures this).

    The native core scans a 1 MiB chunk in about 0.1 ms (7-15 GB/s), less than
    the hop to a worker thread costs, so it runs on the loop. The pure-Python
    reference takes milliseconds to seconds a chunk: off the loop, so the
    dispatcher and other invocations keep going.
    """
    counter = RecordCounter()
    async for chunk in stream:
        if counter.native:
            counter.feed(chunk)
        else:
            await offload(counter.feed, chunk)
    return counter.finish()
