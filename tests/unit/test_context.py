"""What a function gets: Context's listing, head, still-current check, safe keys and writes."""

from __future__ import annotations

import gzip

import pytest
import structlog

from runtime import Context, ObjectEvent, Router, Superseded, UsageError
from runtime.engine.outcome import Status
from runtime.testing import Harness

router = Router()


@router.function(bucket="job-inputs", prefix="escape/")
async def escaper(event: ObjectEvent, ctx: Context) -> None:
    await ctx.write("../elsewhere.bin", b"x")


@router.function(bucket="job-inputs", prefix="twice/")
async def twice(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    for _ in range(3):
        await ctx.put("job-outputs", "twice/total.bin", b"same key, three writes")
    return {"listed": len(await ctx.list("job-outputs", "twice/"))}


@router.function(bucket="job-inputs", prefix="gz/")
async def inflate(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.gunzip(ctx.read(event))])
    return {"bytes": len(data)}


ESCAPER, TWICE, INFLATE = router.routes


async def test_an_output_name_that_escapes_is_a_permanent_error_not_five_retries() -> None:
    # Before: a bare ValueError, retried as if the next attempt could differ.
    h = Harness()
    h.storage.put_bytes("job-inputs", "escape/a", b"x")
    outcome = await h.deliver(ESCAPER, h.event("job-inputs", "escape/a"))
    assert outcome.status is Status.DEAD_LETTER
    assert outcome.reason == "permanent error"
    assert outcome.error is not None and outcome.error.type == "runtime.UsageError"
    assert "'../elsewhere.bin'" in outcome.error.message
    assert not h.publisher.on("test.fn.escaper.retry.1000ms")


async def test_each_output_is_listed_once_however_often_it_is_written() -> None:
    h = Harness()
    result = await h.run(TWICE, b"x", key="twice/in")
    assert result.outputs == ("s3://job-outputs/twice/total.bin",)
    assert result.output == {"listed": 1}


async def test_gunzip_through_the_context() -> None:
    h = Harness()
    result = await h.run(INFLATE, gzip.compress(b"a" * 10_000), key="gz/x.gz")
    assert result.output == {"bytes": 10_000}


def _ctx(h: Harness, event: ObjectEvent) -> Context:
    return Context(
        function="f",
        function_version="v",
        event=event,
        attempt=1,
        storage=h.storage,
        output_bucket="job-outputs",
        chunk_size=1024,
        log=structlog.get_logger("test"),
    )


async def test_still_current_and_head_see_a_newer_write() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "k", b"first")
    ctx = _ctx(h, h.event("job-inputs", "k"))
    await ctx.still_current()  # nothing changed yet
    info = await ctx.head("job-inputs", "k")
    assert info is not None and info.size == 5
    h.storage.put_bytes("job-inputs", "k", b"second")
    with pytest.raises(Superseded):
        await ctx.still_current()
    assert await ctx.head("job-inputs", "missing") is None


def test_safe_key_cannot_climb_out_of_its_prefix() -> None:
    assert Context.safe_key("../../etc/passwd") == "%2E%2E/%2E%2E/etc/passwd"
    assert Context.safe_key("/abs//x") == "%00/abs/%00/x"


async def test_write_refuses_result_json_and_absolute_names() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "k", b"x")
    ctx = _ctx(h, h.event("job-inputs", "k"))
    # "./x" and "a//b" were accepted before; they make keys tools mirror oddly.
    for name in ("result.json", "/abs", "", "a/../../b", "./x", "a//b", "a/"):
        with pytest.raises(UsageError):
            await ctx.write(name, b"x")
    assert ctx.outputs == ()


async def test_lineage_of_a_long_non_ascii_key_fits_minios_metadata_limit() -> None:
    # Percent-encoded, a 300-character non-ASCII key is 1.8 KB of metadata on its
    # own; with the rest MinIO refused every write (retried as if transient).
    h = Harness()
    key = "escape-not/" + "ü" * 300
    h.storage.put_bytes("job-inputs", key, b"x")
    ctx = _ctx(h, h.event("job-inputs", key))
    meta = ctx.lineage()
    assert sum(len(k) + len(v) for k, v in meta.items()) < 2048
    other = "escape-not/" + "ü" * 299 + "ö"
    h.storage.put_bytes("job-inputs", other, b"x")
    assert (
        _ctx(h, h.event("job-inputs", other)).lineage()["bucketfn-source-key"]
        != (meta["bucketfn-source-key"])
    )
