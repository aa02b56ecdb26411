"""Functions that exist only for end-to-end tests, deployed beside the real ones."""

from __future__ import annotations

import uuid

from runtime import Context, ObjectEvent, Router

router = Router()


@router.function(bucket="job-inputs", prefix="e2e-count/")
async def invocation_log(event: ObjectEvent, ctx: Context) -> dict[str, object]:
    """Leave one marker object per invocation, so a test can count invocations."""
    size = 0
    async for chunk in ctx.read(event):
        size += len(chunk)
    await ctx.write(f"invocations/{uuid.uuid4().hex}", event.event_name.encode())
    return {"size": size, "event": event.event_name}
