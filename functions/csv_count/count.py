"""Count the records of a CSV (or gzipped CSV) without loading it.

``rows`` are the non-blank RFC 4180 records after the header line (a newline
inside quotes does not end a record); ``columns`` are the header's fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypedDict

from functions.csv_count.error import CsvFormatError
from functions.csv_count.scanner import RecordCounter
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
    counter = RecordCounter()
    try:
        async for chunk in stream:
            await offload(counter.feed, chunk)  # off the loop: other functions keep going
        count = counter.finish()
    except CsvFormatError as exc:
        raise InputError(exc.reason, where=f"byte {exc.offset}") from exc
    return {"rows": count.rows, "columns": list(count.columns), "bytes": count.bytes}
