"""The function ``make cluster-faults`` runs: a side effect that can be counted.

``cluster_touch`` holds an invocation slot for a moment (so concurrency is real),
then writes ``touch.json`` beside its result record in a *versioned* bucket: every
write of it is a version, so a side effect applied twice shows as two versions.
It is idempotent the way a function must be under at-least-once delivery: a
redelivered invocation (its process was killed after the write, before the
record) finds its own earlier write for this revision and does not write again,
and says so in its result (``rerun``). Each result also carries the process id
and how many invocations were in that process at once when it started, so per-
process peaks come from the records, not from sampling.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

from runtime import App, Context, ObjectEvent, Router

BUCKET = "cluster-in"
OUTPUT = "cluster-out"  # BUCKETFN_OUTPUT_BUCKET of the runtimes: records and touches
REVISION = "bucketfn-source-revision"  # the lineage stamp every output carries
HOLD_S = 0.05  # work per invocation: long enough for invocations to overlap

router = Router()
_running = 0


@router.function(bucket=BUCKET, prefix="load/", suffix=".bin")
async def cluster_touch(event: ObjectEvent, ctx: Context) -> dict[str, Any]:
    """Hold a slot, then write ``touch.json`` once per revision; report pid and concurrency."""
    global _running  # noqa: PLW0603 - the process's own count of invocations in flight
    _running += 1
    concurrent = _running
    try:
        await asyncio.sleep(HOLD_S)
        name = "touch.json"
        earlier = await ctx.head(ctx.output_bucket, ctx.output_prefix + name)
        revision = ctx.lineage()[REVISION]
        rerun = earlier is not None and (earlier.metadata or {}).get(REVISION) == revision
        if not rerun:
            body = orjson.dumps({"key": event.key, "revision": event.revision, "pid": os.getpid()})
            await ctx.write(name, body, content_type="application/json")
        return {"pid": os.getpid(), "concurrent": concurrent, "rerun": rerun}
    finally:
        _running -= 1


app = App([router], versioned=(OUTPUT,))
