"""The worker's invocation contract, on the in-memory harness."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from runtime import (
    Body,
    Context,
    InputError,
    ObjectEvent,
    ObjectInfo,
    Reject,
    RetryPolicy,
    Router,
    StorageError,
)
from runtime.core.names import result_key
from runtime.core.records import Invocation, dumps
from runtime.engine.outcome import Status
from runtime.testing import Harness, MemoryStorage

router = Router()
calls: list[str] = []


@router.function(bucket="job-inputs", prefix="uploads/", retry=RetryPolicy(max_attempts=3))
async def echo(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    calls.append(event.key)
    data = b"".join([c async for c in ctx.read(event)])
    if data == b"reject":
        raise Reject("told to")
    if data == b"bad":
        raise InputError("malformed", where="line 3")
    if data == b"flaky":
        raise ConnectionError("reset by peer")
    await ctx.write("copy.bin", data)
    return {"n": len(data)}


ROUTE = router.routes[0]


async def test_result_record_and_outputs() -> None:
    h = Harness()
    result = await h.run(ROUTE, b"hello", key="uploads/a b.txt")
    assert result.output == {"n": 5}
    assert result.outputs == ("s3://job-outputs/echo/uploads/a b.txt/copy.bin",)
    stored = orjson.loads(
        h.storage.objects[("job-outputs", result_key("echo", "uploads/a b.txt"))].data
    )
    assert stored["status"] == "ok"
    assert stored["source"]["key"] == "uploads/a b.txt"
    assert stored["function_version"] == ROUTE.version
    copy = h.storage.objects[("job-outputs", "echo/uploads/a b.txt/copy.bin")]
    assert copy.metadata["bucketfn-function"] == "echo"
    assert copy.metadata["bucketfn-source-key"] == "uploads/a b.txt"


async def test_same_revision_twice_runs_once() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/dup", b"x")
    ev = h.event("job-inputs", "uploads/dup")
    calls.clear()
    assert (await h.deliver(ROUTE, ev)).status is Status.OK
    assert (await h.deliver(ROUTE, ev)).status is Status.DUPLICATE
    assert calls == ["uploads/dup"]


async def test_stale_event_never_overwrites_newer_result() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/s", b"old")
    old = h.event("job-inputs", "uploads/s")
    h.storage.put_bytes("job-inputs", "uploads/s", b"newer")
    new = h.event("job-inputs", "uploads/s")
    assert (await h.deliver(ROUTE, new)).status is Status.OK
    assert (await h.deliver(ROUTE, old)).status is Status.SUPERSEDED
    rec = orjson.loads(h.storage.objects[("job-outputs", result_key("echo", "uploads/s"))].data)
    assert rec["output"] == {"n": 5}


async def test_stale_event_on_versioned_bucket() -> None:
    h = Harness(versioned=frozenset({"job-inputs"}))
    h.storage.put_bytes("job-inputs", "uploads/v", b"one")
    old = h.event("job-inputs", "uploads/v")
    h.storage.put_bytes("job-inputs", "uploads/v", b"one")  # same bytes, new version
    assert (await h.deliver(ROUTE, old)).status is Status.SUPERSEDED


async def test_transient_failure_is_retried_through_a_delay_tier() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/f", b"flaky")
    out = await h.deliver(ROUTE, h.event("job-inputs", "uploads/f"))
    assert out.status is Status.RETRY
    ((queue, body, meta),) = h.publisher.messages
    assert queue.startswith("test.fn.echo.retry.")
    nxt = orjson.loads(body)
    assert nxt["attempt"] == 2
    assert nxt["history"][0]["error_type"] == "ConnectionError"
    assert 0 < meta["expiration_ms"] <= int(queue.rsplit(".", 1)[1].removesuffix("ms"))


@pytest.mark.parametrize(("data", "etype"), [(b"reject", "Reject"), (b"bad", "InputError")])
async def test_permanent_failure_dead_letters_at_once(data: bytes, etype: str) -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/p", data)
    out = await h.deliver(ROUTE, h.event("job-inputs", "uploads/p"))
    assert out.status is Status.DEAD_LETTER
    (letter,) = h.publisher.on("test.fn.echo.dlq")
    assert letter["error"]["type"].endswith(etype)
    assert letter["reason"] == "permanent error"
    assert letter["invocation"]["event"]["key"] == "uploads/p"
    assert "Traceback" in letter["error"]["traceback"]
    rec = orjson.loads(h.storage.objects[("job-outputs", result_key("echo", "uploads/p"))].data)
    assert rec["status"] == "dead-lettered"


async def test_exhausted_attempts_dead_letter_with_history() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/x", b"flaky")
    out = await h.deliver(ROUTE, h.event("job-inputs", "uploads/x"), attempt=3)
    assert out.status is Status.DEAD_LETTER
    (letter,) = h.publisher.on("test.fn.echo.dlq")
    assert "exhausted" in letter["reason"]


async def test_fingerprint_is_stable_for_the_same_bug() -> None:
    h = Harness()
    for i in range(2):
        h.storage.put_bytes("job-inputs", f"uploads/r{i}", b"reject")
        await h.deliver(ROUTE, h.event("job-inputs", f"uploads/r{i}"))
    a, b = h.publisher.on("test.fn.echo.dlq")
    assert a["error"]["fingerprint"] == b["error"]["fingerprint"]
    assert a["id"] != b["id"]


async def test_an_older_sequencer_is_superseded_before_the_handler_runs() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "uploads/q", b"newer")
    newer = h.event("job-inputs", "uploads/q").model_copy(update={"sequencer": "187A1B2C3D4E5F70"})
    assert (await h.deliver(ROUTE, newer)).status is Status.OK
    older = newer.model_copy(
        update={"sequencer": "187A1B2C3D4E5F6F", "etag": "0" * 32, "event_id": "old"}
    )
    calls.clear()
    assert (await h.deliver(ROUTE, older)).status is Status.SUPERSEDED
    assert calls == []  # decided before the handler: the record and the store agree
    rec = orjson.loads(h.storage.objects[("job-outputs", result_key("echo", "uploads/q"))].data)
    assert rec["source"]["sequencer"] == "187A1B2C3D4E5F70"


async def test_the_current_revision_runs_even_behind_a_skewed_sequencer() -> None:
    # Two MinIO servers with skewed clocks: the newest write carries the lower sequencer.
    # The store's current revision outranks it, before the handler and at the record.
    h = Harness(versioned=frozenset({"job-inputs"}))
    h.storage.put_bytes("job-inputs", "uploads/skew", b"old")
    old = h.event("job-inputs", "uploads/skew").model_copy(update={"sequencer": "187A00F0"})
    assert (await h.deliver(ROUTE, old)).status is Status.OK
    h.storage.put_bytes("job-inputs", "uploads/skew", b"newest")
    new = h.event("job-inputs", "uploads/skew").model_copy(update={"sequencer": "187A000F"})
    assert (await h.deliver(ROUTE, new)).status is Status.OK
    assert (await h.deliver(ROUTE, old)).status is Status.SUPERSEDED
    rec = orjson.loads(h.storage.objects[("job-outputs", result_key("echo", "uploads/skew"))].data)
    assert rec["source"]["version_id"] == new.version_id


async def test_a_return_value_that_is_not_json_is_dead_lettered_not_retried() -> None:
    r = Router()

    @r.function(bucket="job-inputs")
    async def returns_a_socket(event: ObjectEvent, ctx: Context) -> object:
        return {"handle": object()}

    h = Harness()
    h.storage.put_bytes("job-inputs", "k", b"x")
    out = await h.deliver(r.routes[0], h.event("job-inputs", "k"))
    assert out.status is Status.DEAD_LETTER
    (letter,) = h.publisher.on("test.fn.returns_a_socket.dlq")
    assert "not JSON-serializable" in letter["error"]["message"]
    assert letter["reason"] == "permanent error"


class _Message:
    """Just enough of an AMQP delivery for Worker.handle: a body and an ack."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.acked = 0

    async def ack(self) -> None:
        self.acked += 1


class _OutputsDown(MemoryStorage):
    """The output bucket refuses writes (an outage of the store the records go to)."""

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        if bucket == "job-outputs":
            raise StorageError(f"PUT {bucket}/{key}: 503 SlowDown")
        return await super().put(bucket, key, body, **kw)


async def test_a_dead_letter_whose_record_cannot_be_written_is_parked_not_duplicated() -> None:
    # Before: the letter was published first, then the record write raised out of
    # handle(); the message was requeued at once and each redelivery added a letter.
    h = Harness()
    h.storage = _OutputsDown()
    h.storage.put_bytes("job-inputs", "uploads/p", b"reject")
    inv = Invocation(function="echo", event=h.event("job-inputs", "uploads/p"))
    for _ in range(3):  # as redeliveries would
        message = _Message(dumps(inv))
        outcome = await h.worker(ROUTE).handle(message)  # type: ignore[arg-type]
        assert outcome.status is Status.RETRY
        assert message.acked == 1
    assert h.publisher.on("test.fn.echo.dlq") == []
    parked = [q for q, _, _ in h.publisher.messages]
    assert len(parked) == 3 and all(q.startswith("test.fn.echo.retry.") for q in parked)
    nxt = orjson.loads(h.publisher.messages[0][1])
    assert nxt["attempt"] == 2
    assert "could not record the outcome" in nxt["history"][-1]["message"]


gated = Router()
gate = asyncio.Event()
entered = asyncio.Event()
gated_calls: list[str] = []


@gated.function(bucket="job-inputs", prefix="uploads/")
async def slow(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    gated_calls.append(event.key)
    entered.set()
    await gate.wait()
    return {"n": 1}


async def test_two_copies_of_one_invocation_in_flight_run_the_handler_once() -> None:
    # Before: both copies (the sweep's and the event's, or a retry and a slow first
    # run) found no record, both ran, and the record got a second version.
    h = Harness()
    route = gated.routes[0]
    worker = h.worker(route)
    h.storage.put_bytes("job-inputs", "uploads/twice", b"x")
    inv = Invocation(function="slow", event=h.event("job-inputs", "uploads/twice"))
    gate.clear()
    entered.clear()
    gated_calls.clear()
    first = asyncio.create_task(worker.process(inv))
    await entered.wait()
    second = asyncio.create_task(worker.process(inv))
    for _ in range(20):  # let the second copy get as far as it can on its own
        await asyncio.sleep(0)
    assert gated_calls == ["uploads/twice"]
    gate.set()
    outcomes = await asyncio.gather(first, second)
    assert [o.status for o in outcomes] == [Status.OK, Status.DUPLICATE]
    assert gated_calls == ["uploads/twice"]
    assert len(worker.turns) == 0  # the lock table forgets keys with nothing in flight
    key = ("job-outputs", result_key("slow", "uploads/twice"))
    assert orjson.loads(h.storage.objects[key].data)["status"] == "ok"


async def test_other_keys_do_not_wait_for_a_slow_one() -> None:
    h = Harness()
    route = gated.routes[0]
    worker = h.worker(route)
    for k in ("uploads/slow-a", "uploads/slow-b"):
        h.storage.put_bytes("job-inputs", k, b"x")
    gate.clear()
    entered.clear()
    gated_calls.clear()
    invs = [
        Invocation(function="slow", event=h.event("job-inputs", k))
        for k in ("uploads/slow-a", "uploads/slow-b")
    ]
    tasks = [asyncio.create_task(worker.process(i)) for i in invs]
    for _ in range(20):
        await asyncio.sleep(0)
    assert sorted(gated_calls) == ["uploads/slow-a", "uploads/slow-b"]  # both running at once
    gate.set()
    assert [o.status for o in await asyncio.gather(*tasks)] == [Status.OK, Status.OK]
