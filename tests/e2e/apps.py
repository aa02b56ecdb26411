"""Functions that exist only for end-to-end tests, deployed beside the real ones.

``router`` runs inside the test process; ``crash_router`` runs in a separate
``bucketfn run`` process that the tests kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

from runtime import App, Context, InputError, ObjectEvent, RetryPolicy, Router

router = Router()
crash_router = Router()

FIXED = {"fixable": False}  # flipped by the replay test: "the bug is fixed"


async def _size(event: ObjectEvent, ctx: Context) -> int:
    size = 0
    async for chunk in ctx.read(event):
        size += len(chunk)
    return size


@router.function(bucket="job-inputs", prefix="e2e-count/")
async def invocation_log(event: ObjectEvent, ctx: Context) -> dict[str, object]:
    """Leave one marker object per invocation, so a test can count invocations."""
    size = await _size(event, ctx)
    await ctx.write(f"invocations/{uuid.uuid4().hex}", event.event_name.encode())
    return {"size": size, "event": event.event_name}


@router.function(
    bucket="job-inputs",
    prefix="e2e-flaky/",
    retry=RetryPolicy(max_attempts=5, base_delay=0.4, max_delay=2),
)
async def flaky(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Fails its first two attempts with a transient error, then succeeds."""
    if ctx.attempt < 3:
        raise ConnectionError(f"simulated outage on attempt {ctx.attempt}")
    return {"size": await _size(event, ctx)}


@router.function(bucket="job-inputs", prefix="e2e-strict/")
async def strict(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Treats content containing ``bad`` as malformed input (a permanent error)."""
    data = b"".join([c async for c in ctx.read(event)])
    if b"bad" in data:
        raise InputError("content is malformed", where=f"byte {data.index(b'bad')}")
    return {"size": len(data)}


@router.function(
    bucket="job-inputs",
    prefix="e2e-fixable/",
    retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1),
)
async def fixable(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Has a bug until the test 'deploys the fix'."""
    if not FIXED["fixable"]:
        raise KeyError("customer_id")
    return {"size": await _size(event, ctx)}


RACING: dict[str, int] = {}  # key → invocations of `racer` running now (one process)
OVERLAPPED: set[str] = set()  # keys on which two `racer` invocations ran at once


@router.function(bucket="raw", prefix="e2e-race/", suffix=".race")
async def racer(event: ObjectEvent, ctx: Context) -> dict[str, str]:
    """Reads its own version (a versioned bucket: it never notices a newer one), then
    waits and succeeds or fails as the body says: ``ok:<seconds>`` or ``bad:<seconds>``."""
    RACING[event.key] = RACING.get(event.key, 0) + 1
    try:
        if RACING[event.key] > 1:
            OVERLAPPED.add(event.key)
        body = b"".join([c async for c in ctx.read(event)]).decode()
        verdict, _, wait = body.partition(":")
        await asyncio.sleep(float(wait))
        if RACING[event.key] > 1:
            OVERLAPPED.add(event.key)
        if verdict == "bad":
            raise InputError("told to fail")
        return {"body": body}
    finally:
        RACING[event.key] -= 1


@crash_router.function(bucket="job-inputs", prefix="e2e-slow/")
async def slow(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Marks its start, then works long enough to be killed mid-invocation."""
    await ctx.write(f"started/{uuid.uuid4().hex}", b"")
    await asyncio.sleep(float(os.environ.get("E2E_SLOW_SECONDS", "3")))
    # One marker per invocation that ran to its end: the side effect a test counts.
    await ctx.write(f"finished/{uuid.uuid4().hex}", b"")
    return {"size": await _size(event, ctx)}


@crash_router.function(bucket="job-inputs", prefix="e2e-crash/")
async def crasher(event: ObjectEvent, ctx: Context) -> None:
    """Kills its own process on every delivery: only the broker can stop it."""
    os.kill(os.getpid(), signal.SIGKILL)


CRASH_APP = App([crash_router])
