"""The merge behind the sweep and backfill: what has no result for its current content."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import orjson

from runtime import App, Context, ObjectEvent, Router
from runtime.core.names import Meta, Queues, result_key
from runtime.core.settings import Settings
from runtime.ops.backfill import Scope, backfill
from runtime.ops.reconcile import Reconciler
from runtime.ops.sweep import sweep_once
from runtime.testing import MemoryPublisher, MemoryStorage

router = Router()


@router.function(bucket="in", prefix="p/", suffix=".csv")
async def count(event: ObjectEvent, ctx: Context) -> None:
    return None


ROUTE = router.routes[0]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


def setup() -> tuple[MemoryStorage, MemoryPublisher, Clock, Reconciler]:
    clock = Clock()
    storage = MemoryStorage()
    storage.clock = clock
    publisher = MemoryPublisher()
    later = lambda: clock.now + timedelta(hours=1)  # noqa: E731 - the sweep runs an hour later
    rec = Reconciler(storage, publisher, Queues("t"), "out", clock=later)
    return storage, publisher, clock, rec


def result(storage: MemoryStorage, key: str) -> None:
    storage.put_bytes("out", result_key("count", key), b"{}")


def enqueued(publisher: MemoryPublisher) -> list[str]:
    return [orjson.loads(b)["event"]["key"] for q, b, _ in publisher.messages if q == "t.fn.count"]


async def test_only_objects_without_a_current_result_are_enqueued() -> None:
    storage, publisher, clock, rec = setup()
    # Keys chosen so result keys sort differently from source keys ("a" vs "a-b").
    for key in ("p/a.csv", "p/a.csv-b.csv", "p/a.csv/c.csv", "p/done.csv", "p/stale.csv"):
        storage.put_bytes("in", key, b"x")
        clock.tick()
    storage.put_bytes("in", "p/notes.txt", b"x")  # not the route's suffix
    result(storage, "p/done.csv")
    result(storage, "p/stale.csv")
    clock.tick()
    storage.put_bytes("in", "p/stale.csv", b"changed after its result")
    pages = [page async for page in rec.pages(ROUTE)]
    pending = sorted(o.key for page in pages for o in page.pending)
    assert pending == ["p/a.csv", "p/a.csv-b.csv", "p/a.csv/c.csv", "p/stale.csv"]
    assert sum(p.done for p in pages) == 1 and sum(p.listed for p in pages) == 5
    sent = await rec.enqueue(ROUTE, [o for p in pages for o in p.pending])
    assert sorted(e.key for e in sent) == pending
    assert sorted(enqueued(publisher)) == pending
    inv = orjson.loads(publisher.messages[0][1])
    assert inv["event"]["source"] == "listing" and inv["event"]["sequencer"] is None


async def test_small_pages_merge_the_same() -> None:
    storage, _, clock, rec = setup()
    keys = [f"p/{i:03d}{'-x' if i % 3 else ''}.csv" for i in range(50)]
    for key in keys:
        storage.put_bytes("in", key, b"x")
        clock.tick()
    for key in keys[::2]:
        result(storage, key)
    pages = [page async for page in rec.pages(ROUTE, page=7)]
    pending = sorted(o.key for page in pages for o in page.pending)
    assert pending == sorted(keys[1::2])


async def test_young_objects_are_left_to_their_events() -> None:
    storage, _, clock, _ = setup()
    rec = Reconciler(storage, MemoryPublisher(), Queues("t"), "out", clock=clock)
    storage.put_bytes("in", "p/new.csv", b"x")
    clock.tick(5)
    (page,) = [p async for p in rec.pages(ROUTE, grace=30)]
    assert (page.young, page.pending) == (1, [])
    clock.tick(60)
    (page,) = [p async for p in rec.pages(ROUTE, grace=30)]
    assert [o.key for o in page.pending] == ["p/new.csv"]


async def test_what_the_function_wrote_itself_is_never_enqueued() -> None:
    storage, publisher, _, rec = setup()
    storage.put_bytes("in", "p/own.csv", b"x", metadata={Meta.FUNCTION: "count"})
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert await rec.enqueue(ROUTE, page.pending) == []
    assert publisher.messages == []


async def test_a_sweep_pass_resumes_from_its_checkpoint() -> None:
    storage, publisher, clock, rec = setup()
    for i in range(25):
        storage.put_bytes("in", f"p/{i:02d}.csv", b"x")
        clock.tick()
    settings = Settings(output_bucket="out", queue_prefix="t", sweep_batch=10, sweep_grace=0)
    app = App([router])
    first = (await sweep_once(app, settings, storage, rec))["count"]
    assert (first.enqueued, first.complete) == (10, False)
    second = (await sweep_once(app, settings, storage, rec))["count"]
    third = (await sweep_once(app, settings, storage, rec))["count"]
    assert (second.enqueued, third.enqueued, third.complete) == (10, 5, True)
    assert sorted(enqueued(publisher)) == [f"p/{i:02d}.csv" for i in range(25)]


async def test_backfill_resumes_after_an_interruption_and_then_enqueues_nothing() -> None:
    storage, publisher, clock, rec = setup()
    for i in range(30):
        storage.put_bytes("in", f"p/{i:02d}.csv", b"x")
        clock.tick()
    settings = Settings(output_bucket="out", queue_prefix="t")

    class Interrupted(Exception):
        pass

    def stop_after_two_pages(name: str, tally: object) -> None:
        if len(publisher.messages) >= 20:
            raise Interrupted

    with contextlib.suppress(Interrupted):
        await backfill([ROUTE], settings, storage, rec, rate=10, progress=stop_after_two_pages)
    assert len(publisher.messages) == 20
    resumed = await backfill([ROUTE], settings, storage, rec, rate=0)
    assert resumed["count"].enqueued == 10  # only what the first run had not reached
    assert sorted(enqueued(publisher)) == [f"p/{i:02d}.csv" for i in range(30)]
    for i in range(30):  # the workers ran
        result(storage, f"p/{i:02d}.csv")
    again = await backfill([ROUTE], settings, storage, rec)
    assert (again["count"].enqueued, again["count"].done) == (0, 30)


async def test_a_dry_run_counts_and_sends_nothing() -> None:
    storage, publisher, _, rec = setup()
    storage.put_bytes("in", "p/a.csv", b"x")
    settings = Settings(output_bucket="out", queue_prefix="t")
    dry = await backfill([ROUTE], settings, storage, rec, dry_run=True)
    assert dry["count"].enqueued == 1
    assert publisher.messages == []
    assert Scope(prefix="p/sub/").covers(ROUTE) and not Scope(prefix="q/").covers(ROUTE)


async def test_a_rewrite_in_the_same_second_as_its_record_is_not_taken_for_done() -> None:
    # SeaweedFS lists whole seconds: the object's rewrite and its old record can
    # share one Last-Modified. Before, a tie counted as done on every pass.
    storage, _, _, rec = setup()
    storage.put_bytes("in", "p/tie.csv", b"first")
    first = await storage.head("in", "p/tie.csv")
    assert first is not None
    storage.put_bytes(
        "out", result_key("count", "p/tie.csv"), b"{}", metadata={Meta.REVISION: first.etag or ""}
    )
    storage.put_bytes("in", "p/tie.csv", b"rewritten in the same second")  # same clock value
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert [o.key for o in page.pending] == ["p/tie.csv"]
    # The record of the current content, same second: done.
    current = await storage.head("in", "p/tie.csv")
    assert current is not None
    storage.put_bytes(
        "out", result_key("count", "p/tie.csv"), b"{}", metadata={Meta.REVISION: current.etag or ""}
    )
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert (page.done, page.pending) == (1, [])


async def test_a_checkpoint_left_by_a_run_on_another_prefix_is_not_resumed() -> None:
    # One checkpoint per function: a run on p/b/ interrupted, then a run on p/a/,
    # would list p/a/ after "p/b/..." and find nothing at all.
    storage, _published, _, rec = setup()
    for sub in ("a", "b"):
        for i in range(20):
            storage.put_bytes("in", f"p/{sub}/{i:02d}.csv", b"x")
    settings = Settings(output_bucket="out", queue_prefix="t")

    class Interrupted(Exception):
        pass

    def stop_after_one_page(name: str, tally: object) -> None:
        raise Interrupted

    with contextlib.suppress(Interrupted):
        await backfill(
            [ROUTE],
            settings,
            storage,
            rec,
            scope=Scope(prefix="p/b/"),
            rate=10,
            progress=stop_after_one_page,
        )
    other = await backfill([ROUTE], settings, storage, rec, scope=Scope(prefix="p/a/"))
    assert (other["count"].listed, other["count"].enqueued) == (20, 20)


async def test_an_object_written_again_with_the_same_content_after_its_record_is_done() -> None:
    # The ledger settles a promotion by copying it onto its key: the same bytes
    # (same etag), a new Last-Modified after the record of that content. Before,
    # every pass enqueued such an object, and the worker skipped it as a duplicate.
    storage, publisher, clock, rec = setup()
    storage.put_bytes("in", "p/again.csv", b"same bytes")
    first = await storage.head("in", "p/again.csv")
    assert first is not None and first.etag
    clock.tick()
    storage.put_bytes(
        "out", result_key("count", "p/again.csv"), b"{}", metadata={Meta.REVISION: first.etag}
    )
    clock.tick()
    storage.put_bytes("in", "p/again.csv", b"same bytes")  # copied onto itself
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert (page.done, page.pending) == (1, [])
    # Other bytes after the record are still pending, however the times fall.
    clock.tick()
    storage.put_bytes("in", "p/again.csv", b"other bytes")
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert [o.key for o in page.pending] == ["p/again.csv"]
    assert [e.key for e in await rec.enqueue(ROUTE, page.pending)] == ["p/again.csv"]
    assert enqueued(publisher) == ["p/again.csv"]


async def test_on_a_versioned_bucket_a_record_is_judged_by_version_id() -> None:
    storage, _, clock, _ = setup()
    storage.versioned = frozenset({"in"})
    later = lambda: clock.now + timedelta(hours=1)  # noqa: E731
    rec = Reconciler(storage, MemoryPublisher(), Queues("t"), "out", clock=later)
    storage.put_bytes("in", "p/v.csv", b"same bytes")
    clock.tick()
    storage.put_bytes("in", "p/v.csv", b"same bytes")  # same etag, a new version
    second = await storage.head("in", "p/v.csv")
    assert second is not None and second.version_id
    storage.put_bytes(  # a record of the current version, written in the same instant
        "out", result_key("count", "p/v.csv"), b"{}", metadata={Meta.REVISION: second.version_id}
    )
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert (page.done, page.pending) == (1, [])
    clock.tick()
    storage.put_bytes("in", "p/v.csv", b"same bytes")  # a third version, after the record
    (page,) = [p async for p in rec.pages(ROUTE)]
    assert [o.key for o in page.pending] == ["p/v.csv"]
