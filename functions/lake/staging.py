"""raw → staging: validate a dataset's raw file against its contract, promote typed Parquet.

``raw/<dataset>/<path>.csv`` (also ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``)
becomes ``staging/<dataset>/<path>.parquet`` — a key derived from the source
key alone, so reprocessing a source overwrites its staging file instead of
adding a second one — and its invalid and duplicate rows
``staging/_rejected/<dataset>/<path>.jsonl``. The rejects file is always
written, empty if need be, so it never describes an older version of the source.

Nothing is held whole: the object is streamed through the :class:`Stager`
(run off the event loop, a chunk at a time, so other functions in the process
keep running), Parquet and rejects are spooled to temporary files, and each is
uploaded as a stream in one PUT or multipart completion, so consumers see
either the previous file or the new one, never half of one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from typing import Literal, TypedDict

from functions.common import spool
from functions.lake.contracts import CONTRACTS, Contract
from functions.lake.stager import Counts, Stager
from runtime import MIB, Context, InputError, ObjectEvent, RetryPolicy, Router, offload, rechunk

__all__ = ["FORMS", "StagingResult", "router", "staging_keys", "to_staging"]

router = Router()

STAGING = "staging"
REJECTED = "_rejected"
FORMS: dict[str, tuple[Literal["csv", "jsonl"], bool]] = {
    ".csv.gz": ("csv", True),
    ".jsonl.gz": ("jsonl", True),
    ".csv": ("csv", False),
    ".jsonl": ("jsonl", False),
}
"""Source suffix → (format, gzipped). Longest first: ``.csv.gz`` is not ``.csv``."""

FEED_BYTES = MIB  # bytes handed to the stager at once: one thread hop per MiB


class StagingResult(TypedDict):
    """``to_staging``'s result, stored in ``result.json``."""

    dataset: str
    read: int
    written: int
    rejected: int
    duplicates: int
    staging_key: str
    rejected_key: str
    ignored_columns: list[str]


def staging_keys(source_key: str) -> tuple[str, str, str]:
    """``(dataset, staging key, rejects key)`` of a raw key; InputError if it has no dataset."""
    dataset, _, rest = source_key.partition("/")
    if not rest:
        raise InputError("a raw key must start with '<dataset>/'", where=f"key {source_key!r}")
    stem = next((rest[: -len(s)] for s in FORMS if rest.endswith(s)), rest)
    path = Context.safe_key(stem)  # no '..' or empty segment can move the output elsewhere
    return dataset, f"{dataset}/{path}.parquet", f"{REJECTED}/{dataset}/{path}.jsonl"


@router.function(
    bucket="raw",
    suffix=tuple(FORMS),
    writes_to=(STAGING,),
    # A 2 GB file takes minutes, not the default's five at most; and under the
    # broker's consumer timeout (30 min by default), which `bucketfn init` checks.
    retry=RetryPolicy(timeout=1500.0),
)
async def to_staging(event: ObjectEvent, ctx: Context) -> StagingResult:
    """Validate, deduplicate and promote one raw file of a known dataset."""
    dataset, staging_key, rejected_key = staging_keys(event.key)
    contract = CONTRACTS.get(dataset)
    if contract is None:
        known = ", ".join(sorted(CONTRACTS))
        raise InputError(f"unknown dataset {dataset!r} (known: {known})", where=event.key)
    form, gzipped = next(v for s, v in FORMS.items() if event.key.endswith(s))
    stream: AsyncIterator[bytes] = ctx.read(event)
    if gzipped:
        stream = ctx.gunzip(stream)
    with ExitStack() as files:
        parquet = files.enter_context(spool.spool())
        rejects = files.enter_context(spool.spool())
        stager = Stager(contract, form=form, parquet=parquet, rejects=rejects)
        try:
            async for piece in rechunk(stream, FEED_BYTES):
                await offload(stager.feed, piece)
            counts = await offload(stager.finish)
        except Exception:
            # Not on cancellation: the stager may still be running in its thread then,
            # and the Parquet writer is not thread-safe (closing the spools is enough).
            stager.close()
            raise
        await ctx.still_current(event)  # cheap: skip the uploads when already overtaken
        meta = _metadata(contract, counts)
        # Rejects first: once the staging file appears, its rejects are there to see.
        # Promoted, not put: the uploads take minutes for a large file, and a newer
        # version's run may finish first; an older version must never replace it.
        await ctx.promote(
            STAGING,
            rejected_key,
            spool.chunks(rejects),
            content_type="application/x-ndjson",
            metadata=meta,
        )
        await ctx.promote(
            STAGING,
            staging_key,
            spool.chunks(parquet),
            content_type="application/vnd.apache.parquet",
            metadata=meta,
        )
    ctx.log.info("staged", dataset=dataset, read=counts.read, written=counts.written)
    return {
        "dataset": dataset,
        "read": counts.read,
        "written": counts.written,
        "rejected": counts.rejected,
        "duplicates": counts.duplicates,
        "staging_key": staging_key,
        "rejected_key": rejected_key,
        "ignored_columns": list(counts.ignored_columns),
    }


def _metadata(contract: Contract, counts: Counts) -> dict[str, str]:
    return {
        "bucketfn-dataset": contract.dataset,
        "bucketfn-contract": contract.fingerprint,
        "bucketfn-rows-read": str(counts.read),
        "bucketfn-rows-written": str(counts.written),
        "bucketfn-rows-rejected": str(counts.rejected),
        "bucketfn-rows-duplicate": str(counts.duplicates),
    }
