"""staging → curated: each staging file's partial aggregate, then the dataset's total.

For a staging file ``staging/<dataset>/<path>.parquet`` of a dataset with a
:class:`~functions.lake.rollups.Rollup`:

1. its partial aggregate goes to ``curated/<dataset>/_partials/<path>.parquet``
   — a key derived from the staging key, so a redelivery or a reprocessed
   source replaces the file's contribution instead of adding it again;
2. the total is recomputed from every partial and written, whole and
   atomically, to ``curated/<dataset>/<rollup name>.parquet``.

Two invocations may recompute at once, and the slower one could write a total
that misses the other's partial. So after writing, the partials are listed
again and, if any was added or replaced (keys and ETags) since they were read,
the total is recomputed. The last total written is then always computed from a
listing taken after the last partial was written: whichever invocation wrote
last saw them all, or sees the change and goes round again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypedDict

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]  # no types without pyarrow-stubs
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from functions.common import spool
from functions.lake.rollups import ROLLUPS, Rollup
from functions.lake.staging import REJECTED
from runtime import (
    Context,
    InputError,
    ObjectEvent,
    ObjectGone,
    Retry,
    Router,
    Superseded,
    offload,
)

if TYPE_CHECKING:
    from runtime import ObjectInfo

__all__ = ["CuratedResult", "router", "to_curated"]

router = Router()

CURATED = "curated"
PARTIALS = "_partials"
MAX_ROUNDS = 5  # recomputations while partials keep changing, before retrying later
FOLD_TABLES = 256  # partials read before they are added up, bounding memory


class CuratedResult(TypedDict):
    """``to_curated``'s result, stored in ``result.json``."""

    dataset: str
    skipped: str | None
    partial_key: str | None
    total_key: str | None
    groups: int
    partials: int
    total_groups: int
    rounds: int


@router.function(bucket="staging", suffix=".parquet", writes_to=(CURATED,))
async def to_curated(event: ObjectEvent, ctx: Context) -> CuratedResult:
    """Replace this staging file's partial, then recompute the dataset's total."""
    dataset, _, rest = event.key.partition("/")
    rollup = ROLLUPS.get(dataset)
    if event.key.startswith(f"{REJECTED}/") or rollup is None or not rest:
        return _skipped(dataset, "rejected rows" if dataset == REJECTED else "no rollup")
    partial_key = f"{dataset}/{PARTIALS}/{ctx.safe_key(rest)}"
    total_key = f"{dataset}/{rollup.name}.parquet"
    with spool.spool() as source:
        async for chunk in ctx.read(event):
            await asyncio.to_thread(source.write, chunk)
        await asyncio.to_thread(source.seek, 0)
        try:
            partial = await offload(rollup.partial, source)
        except (pa.ArrowException, KeyError) as exc:
            # Not Parquet, or not this dataset's columns: no retry can change the file.
            raise InputError(f"not a staging file of {dataset!r}: {exc}", where=event.key) from exc
    await ctx.still_current(event)
    # The partial is this staging file's revision's: promoted, so an older one's never
    # replaces a newer one's. The total is recomputed from whatever partials are there.
    await _put_table(
        ctx, partial_key, partial, {"bucketfn-groups": str(partial.num_rows)}, promote=True
    )
    partials, total_groups, rounds = await _recompute(ctx, rollup, total_key)
    return {
        "dataset": dataset,
        "skipped": None,
        "partial_key": partial_key,
        "total_key": total_key,
        "groups": partial.num_rows,
        "partials": partials,
        "total_groups": total_groups,
        "rounds": rounds,
    }


async def _recompute(ctx: Context, rollup: Rollup, total_key: str) -> tuple[int, int, int]:
    prefix = f"{rollup.dataset}/{PARTIALS}/"
    listed = await ctx.list(CURATED, prefix)
    for rounds in range(1, MAX_ROUNDS + 1):
        try:
            total = await _combine(ctx, rollup, listed)
        except (Superseded, ObjectGone):
            # A partial was replaced or removed after the listing: take a new one.
            listed = await ctx.list(CURATED, prefix)
            continue
        meta = {"bucketfn-partials": str(len(listed)), "bucketfn-groups": str(total.num_rows)}
        await _put_table(ctx, total_key, total, meta)
        again = await ctx.list(CURATED, prefix)
        if again == listed:
            return len(listed), total.num_rows, rounds
        listed = again
    # Giving up silently could leave a total that misses a partial; a later attempt will not.
    raise Retry(reason=f"partials of {rollup.dataset!r} kept changing for {MAX_ROUNDS} rounds")


async def _combine(ctx: Context, rollup: Rollup, listed: list[ObjectInfo]) -> pa.Table:
    if not listed:
        raise ObjectGone(f"no partials under {CURATED}/{rollup.dataset}/{PARTIALS}/")
    total: pa.Table | None = None
    held: list[pa.Table] = []
    for item in listed:
        with spool.spool() as file:
            await spool.download(ctx.read_object(CURATED, item.key, etag=item.etag), into=file)
            held.append(await offload(pq.read_table, file))
        if len(held) >= FOLD_TABLES:
            parts = held if total is None else [total, *held]
            total, held = await offload(rollup.combine, parts), []
    parts = held if total is None else [total, *held]
    return await offload(rollup.combine, parts)


async def _put_table(
    ctx: Context, key: str, table: pa.Table, metadata: dict[str, str], *, promote: bool = False
) -> None:
    with spool.spool() as file:
        await offload(pq.write_table, table, file, compression="zstd")
        write = ctx.promote if promote else ctx.put
        await write(
            CURATED,
            key,
            spool.chunks(file),
            content_type="application/vnd.apache.parquet",
            metadata={"bucketfn-dataset": key.partition("/")[0], **metadata},
        )


def _skipped(dataset: str, why: str) -> CuratedResult:
    return {
        "dataset": dataset,
        "skipped": why,
        "partial_key": None,
        "total_key": None,
        "groups": 0,
        "partials": 0,
        "total_groups": 0,
        "rounds": 0,
    }
