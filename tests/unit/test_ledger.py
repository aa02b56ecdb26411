"""Stale writes: an older revision's record or promotion never replaces a newer one's.

Invocations for several revisions of one key run together on an in-memory store
that yields at every call, so their storage calls interleave in many orders;
whatever the order and whichever fails, the key ends with the newest revision's.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest

from functions.lake import staging as to_staging
from runtime import Body, Context, InputError, ObjectEvent, ObjectInfo, Router
from runtime.app.ledger import HISTORY, UNORDERED, Entry, pick
from runtime.core.errors import Superseded, UsageError
from runtime.core.names import output_prefix, result_key
from runtime.engine.outcome import Status
from runtime.testing import Harness, MemoryStorage
from runtime.testing.memory import MemoryPublisher

router = Router()


@router.function(bucket="job-inputs", prefix="race/")
async def racer(event: ObjectEvent, ctx: Context) -> dict[str, str]:
    """Reads its own version (never noticing a newer one), waits as told, maybe fails."""
    body = b"".join([c async for c in ctx.read(event)]).decode()
    verdict, _, wait = body.partition(":")
    await asyncio.sleep(float(wait) * ctx.attempt)
    if verdict == "bad" or (verdict == "flip" and ctx.attempt > 1):
        raise InputError("told to fail")
    return {"body": body}


ROUTE = router.routes[0]


class Jitter(MemoryStorage):
    """Yields for a random moment before every call, so concurrent calls interleave."""

    def __init__(self, rng: random.Random, versioned: frozenset[str]) -> None:
        super().__init__(versioned)
        self.rng = rng
        self.refused = 0  # conditional PUTs that found another write in place

    async def _pause(self) -> None:
        await asyncio.sleep(self.rng.random() * 0.002)

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        await self._pause()
        return await super().head(bucket, key)

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        await self._pause()
        try:
            return await super().put(bucket, key, body, **kw)
        except Superseded:
            self.refused += 1
            raise

    async def copy(self, bucket: str, key: str, *, to_bucket: str, to_key: str) -> ObjectInfo:
        await self._pause()
        return await super().copy(bucket, key, to_bucket=to_bucket, to_key=to_key)

    async def delete(self, bucket: str, key: str) -> None:
        await self._pause()
        await super().delete(bucket, key)

    async def list(
        self, bucket: str, prefix: str = "", *, start_after: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        await self._pause()
        found = [i async for i in super().list(bucket, prefix, start_after=start_after)]
        for info in found:
            yield info


def _harness(rng: random.Random) -> Harness:
    h = Harness(versioned=frozenset({"job-inputs", "raw"}))
    h.storage = Jitter(rng, frozenset({"job-inputs", "raw"}))
    h.publisher = MemoryPublisher()
    return h


def _record(h: Harness, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        h.storage.objects[("job-outputs", result_key("racer", key))].data
    )
    return doc


@pytest.mark.parametrize("seed", range(6))
async def test_revisions_in_flight_together_always_end_with_the_newest(seed: int) -> None:
    rng = random.Random(seed)
    h = _harness(rng)
    key = "race/k.txt"
    sequencer = 0x187A000000000000
    for round_ in range(25):
        events: list[ObjectEvent] = []
        verdicts: list[str] = []
        for _ in range(rng.choice((2, 3))):
            verdict = rng.choice(("ok", "bad"))
            verdicts.append(verdict)
            body = f"{verdict}:{rng.random() * 0.01:.4f}".encode()
            h.storage.put_bytes("job-inputs", key, body)
            sequencer += rng.randint(1, 1000)
            ev = h.event("job-inputs", key).model_copy(
                update={"sequencer": f"{sequencer:016X}", "event_id": f"{round_}-{sequencer}"}
            )
            events.append(ev)
        outcomes = await asyncio.gather(*(h.deliver(ROUTE, ev) for ev in reversed(events)))
        newest = events[-1]
        rec = _record(h, key)
        assert rec["source"]["sequencer"] == newest.sequencer, (round_, verdicts, outcomes)
        assert rec["status"] == ("ok" if verdicts[-1] == "ok" else "dead-lettered")
        assert outcomes[0].status in (Status.OK, Status.DEAD_LETTER)
        # No older revision's failure is left to replay once the newest holds the key.
        letters = h.publisher.on("test.fn.racer.dlq")
        assert all(
            letter["invocation"]["event"]["sequencer"] <= newest.sequencer for letter in letters
        )
    # The races were real: records landed between a writer's judgement and its PUT,
    # and the record is written in place, with no history beside it.
    assert isinstance(h.storage, Jitter) and h.storage.refused > 0
    history = output_prefix("racer", key) + f"{HISTORY}/"
    assert not [k for b, k in h.storage.objects if k.startswith(history)]


async def test_an_old_failure_finishing_last_never_replaces_the_newer_ok() -> None:
    h = _harness(random.Random(1))
    key = "race/dl.txt"
    h.storage.put_bytes("job-inputs", key, b"bad:0.05")
    old = h.event("job-inputs", key).model_copy(update={"sequencer": "0A", "event_id": "old"})
    h.storage.put_bytes("job-inputs", key, b"ok:0")
    new = h.event("job-inputs", key).model_copy(update={"sequencer": "0B", "event_id": "new"})
    old_outcome, new_outcome = await asyncio.gather(h.deliver(ROUTE, old), h.deliver(ROUTE, new))
    assert new_outcome.status is Status.OK
    assert old_outcome.status is Status.SUPERSEDED
    assert _record(h, key)["status"] == "ok"
    assert h.publisher.on("test.fn.racer.dlq") == []  # nothing stale to replay


async def test_a_failing_copy_of_a_revision_that_succeeded_changes_nothing() -> None:
    h = _harness(random.Random(2))
    key = "race/same.txt"
    h.storage.put_bytes("job-inputs", key, b"flip:0.01")
    ev = h.event("job-inputs", key).model_copy(update={"sequencer": "0C"})
    # Two copies of one revision in flight: the first succeeds, the later one fails.
    first, late = await asyncio.gather(
        h.deliver(ROUTE, ev, attempt=1), h.deliver(ROUTE, ev, attempt=2)
    )
    assert first.status is Status.OK
    assert late.status is Status.DUPLICATE
    assert _record(h, key)["status"] == "ok"
    assert h.publisher.on("test.fn.racer.dlq") == []


async def test_a_replay_that_succeeds_replaces_its_own_revisions_dead_letter() -> None:
    h = _harness(random.Random(3))
    key = "race/replayed.txt"
    h.storage.put_bytes("job-inputs", key, b"flip:0")
    ev = h.event("job-inputs", key).model_copy(update={"sequencer": "0D"})
    assert (await h.deliver(ROUTE, ev, attempt=2)).status is Status.DEAD_LETTER
    assert _record(h, key)["status"] == "dead-lettered"
    # The same revision again (a replay once the bug is fixed): its entry is rewritten,
    # and result.json must follow even though the entry's name is the same.
    assert (await h.deliver(ROUTE, ev, attempt=1)).status is Status.OK
    assert _record(h, key)["status"] == "ok"


def test_entries_sort_by_sequencer_as_numbers_whatever_their_length() -> None:
    assert Entry.of("r", "FF") < Entry.of("r", "100")
    assert Entry.of("r", "187a1b2c3d4e5f6f") < Entry.of("r", "187A1B2C3D4E5F70")
    assert Entry.of("r", None).order == UNORDERED
    assert Entry.of("r", "not hex").order == UNORDERED
    e = Entry.of("v1", "0A")
    assert Entry.parse(e.name) == e
    assert Entry.parse("result.json") is None


def test_the_current_revision_outranks_a_forged_sequencer() -> None:
    real = Entry.of("v-current", "187A000000000001")
    forged = Entry.of("v-old", "F" * 16)
    current = ObjectInfo(bucket="b", key="k", etag="e", version_id="v-current")
    assert pick([forged, real], current) == (real, True)
    # While the current revision has no entry yet, the sequencer decides.
    gone = ObjectInfo(bucket="b", key="k", etag="e", version_id="v-newest")
    assert pick([forged, real], gone) == (forged, False)
    # An entry from the sweep (no sequencer) wins when it is the current revision's.
    swept = Entry.of("v-newest", None)
    assert pick([real, swept], gone) == (swept, True)


async def test_a_function_cannot_write_into_the_history() -> None:
    h = Harness()
    h.storage.put_bytes("job-inputs", "k", b"x")
    ctx = Context(
        function="f",
        function_version="1",
        event=h.event("job-inputs", "k"),
        attempt=1,
        storage=h.storage,
        output_bucket="job-outputs",
        chunk_size=1024,
        log=_log(),
    )
    with pytest.raises(UsageError):
        await ctx.write(f"{HISTORY}/00-00", b"forged")


def _log() -> Any:
    import structlog

    return structlog.get_logger("test")


# -- lake promotions -----------------------------------------------------------------------

SAMPLE = (
    "order_id,customer_id,order_date,amount,currency,status\r\n"
    "O-1,C-1,2024-06-01,12.50,EUR,placed\r\n"
)


class HeldUpload(MemoryStorage):
    """The old version's promotions upload until told to finish: minutes, shortened."""

    def __init__(self, versioned: frozenset[str]) -> None:
        super().__init__(versioned)
        self.held_revision = ""
        self.uploading = asyncio.Event()
        self.release = asyncio.Event()

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        meta = kw.get("metadata") or {}
        if bucket != "raw" and meta.get("bucketfn-source-revision") == self.held_revision:
            self.uploading.set()
            await self.release.wait()
        return await super().put(bucket, key, body, **kw)


async def test_an_old_staging_promotion_never_replaces_a_newer_one() -> None:
    h = Harness(versioned=frozenset({"raw"}))
    storage = HeldUpload(frozenset({"raw"}))
    h.storage = storage
    key = "orders/day.csv"
    old_info = storage.put_bytes("raw", key, SAMPLE.encode())
    assert old_info.version_id is not None
    storage.held_revision = old_info.version_id
    old = h.event("raw", key).model_copy(update={"sequencer": "10"})
    route = to_staging.router.routes[0]
    # The old version's run passes its still_current check and starts uploading…
    old_run = asyncio.create_task(h.deliver(route, old))
    await asyncio.wait_for(storage.uploading.wait(), 10)
    # …while a newer version is written and its run finishes first.
    newer = SAMPLE + "O-2,C-2,2024-06-02,3.00,EUR,placed\r\n"
    new_info = storage.put_bytes("raw", key, newer.encode())
    new = h.event("raw", key).model_copy(update={"sequencer": "11", "event_id": "new"})
    assert (await h.deliver(route, new)).status is Status.OK
    storage.release.set()
    assert (await old_run).status is Status.SUPERSEDED
    _, staging_key, rejected_key = to_staging.staging_keys(key)
    for target in (staging_key, rejected_key):
        obj = storage.objects[("staging", target)]
        assert obj.metadata["bucketfn-source-revision"] == new_info.version_id
    table = pq.read_table(io.BytesIO(storage.objects[("staging", staging_key)].data))
    assert table.num_rows == 2


async def test_the_sweeps_run_of_a_revision_its_event_already_wrote_is_not_superseded() -> None:
    # Found by make faults: a run killed after its promotion left an entry ordered by
    # the event's sequencer; the sweep's run of the same revision (no sequencer, so
    # ordered first) lost to it for ever, ended superseded and never left a record.
    from runtime.app.ledger import Standing

    storage = MemoryStorage()
    await storage.put("src", "k", b"v1", content_type="text/plain")
    head = await storage.head("src", "k")
    assert head is not None and head.etag is not None
    ledger = _ledger(storage, "out", "f/k/result.json")
    by_event = Entry.of(head.etag, "187A000000000001")
    assert await ledger.write(by_event, b"a", content_type="t", metadata={}) is Standing.NEWEST
    by_sweep = Entry.of(head.etag, None)
    assert await ledger.write(by_sweep, b"b", content_type="t", metadata={}) is Standing.NEWEST


def _ledger(storage: MemoryStorage, bucket: str, key: str) -> Any:
    """The ledger of ``bucket/key`` for the source ``src/k`` (history under ``out/f/k/``)."""
    from runtime.app.ledger import Ledger

    return Ledger(
        storage=storage,
        history_bucket="out",
        history="f/k/_history/",
        bucket=bucket,
        key=key,
        source_bucket="src",
        source_key="k",
    )


async def test_a_redone_promotion_keeps_the_first_runs_file() -> None:
    # Found by make faults: a run SIGKILLed after its promotion but before its ack
    # was redelivered, ran again, and wrote the staging file a second time with
    # other bytes (a new version of it, and a second to_curated run on that).
    from runtime.app.ledger import Standing

    storage = MemoryStorage(versioned=frozenset({"staging"}))
    await storage.put("src", "k", b"v1", content_type="text/plain")
    head = await storage.head("src", "k")
    assert head is not None and head.etag is not None
    entry = Entry.of(head.etag, "187A000000000001")
    keep = {"bucketfn-function-version": "1"}
    meta = {"bucketfn-function-version": "1"}
    ledger = _ledger(storage, "staging", "k.parquet")
    assert await ledger.write(entry, b"first", content_type="t", metadata=meta, keep=keep) is (
        Standing.NEWEST
    )
    version = storage.objects[("staging", "k.parquet")].version_id
    assert version is not None

    async def redone() -> AsyncIterator[bytes]:
        raise AssertionError("a kept promotion's body is never read")
        yield b""  # pragma: no cover - makes this an async generator

    assert await ledger.write(entry, redone(), content_type="t", metadata=meta, keep=keep) is (
        Standing.NEWEST
    )
    assert storage.objects[("staging", "k.parquet")].version_id == version  # no second version
    assert storage.objects[("staging", "k.parquet")].data == b"first"
    # New code on the same revision (a backfill after a fix) does replace it.
    newer = {"bucketfn-function-version": "2"}
    assert (
        await ledger.write(entry, b"second", content_type="t", metadata=newer, keep=newer)
        is Standing.NEWEST
    )
    assert storage.objects[("staging", "k.parquet")].data == b"second"
