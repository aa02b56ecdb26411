"""The feed observer and the watch view, without servers.

A hook must never wait or fail, whatever the broker does; every note it makes
must read back as the watcher's model; the view shows what it is asked to.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
from pydantic import SecretStr

from runtime import App, Context, InputError, ObjectEvent, Router
from runtime.cli.watch import View, cells_of
from runtime.core.settings import Settings
from runtime.engine.feed import Batch, Feed, Note, decode
from runtime.engine.observer import Observers
from runtime.testing import Harness

router = Router()


@router.function(bucket="job-inputs", prefix="w/", name="watched")
async def watched(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.read(event)])
    if data == b"bad":
        raise InputError("bad bytes")
    return {"n": len(data)}


APP = App([router])
ROUTE = router.routes[0]
NOW = 1_780_000_000.25
# Nothing listens on port 1: the feed can never connect.
NOWHERE = Settings(
    queue_prefix="unit-feed",
    amqp_url=SecretStr("amqp://guest:guest@127.0.0.1:1/"),
    connect_timeout=0,
)


def batch_of(feed: Feed) -> Batch:
    """What the pump would publish now, read back as a watcher reads it."""
    notes = list(feed._pending)
    body = orjson.dumps({"v": 1, "source": feed.source, "dropped": feed.dropped, "notes": notes})
    batch = decode(body)
    assert batch is not None
    return batch


async def test_every_hook_makes_a_note_the_watcher_can_read() -> None:
    feed = Feed(NOWHERE, clock=lambda: NOW)
    h = Harness(observer=Observers([feed]))
    h.storage.put_bytes("job-inputs", "w/ok", b"good")
    h.storage.put_bytes("job-inputs", "w/bad", b"bad")
    ok, bad = h.event("job-inputs", "w/ok"), h.event("job-inputs", "w/bad")
    feed.dispatched(ok, ["watched", "other"])
    feed.unmatched(ok)
    feed.rejected(None, "not JSON: " + "x" * 1000, "letter-1")
    await h.deliver(ROUTE, ok)
    await h.deliver(ROUTE, ok)
    await h.deliver(ROUTE, bad)

    notes = batch_of(feed).notes
    assert [(n.kind, n.outcome) for n in notes] == [
        ("routed", None),
        ("unmatched", None),
        ("rejected", None),
        ("finished", "ok"),
        ("finished", "duplicate"),
        ("finished", "dead-letter"),
    ]
    assert all(n.at == datetime.fromtimestamp(NOW, UTC) for n in notes)
    routed, _, rejected, done, _, failed = notes
    assert routed.functions == ("watched", "other") and routed.key == "w/ok"
    assert rejected.error is not None and len(rejected.error) == 300  # bounded
    assert (done.function, done.bucket, done.key, done.attempt) == (
        "watched",
        "job-inputs",
        "w/ok",
        1,
    )
    assert done.seconds is not None and done.seconds >= 0
    assert failed.error == "runtime.InputError: bad bytes" and failed.letter_id


async def test_hooks_never_wait_for_a_broker_that_is_not_there() -> None:
    feed = Feed(NOWHERE, capacity=100, flush_within=0.5)
    event = ObjectEvent(event_id="e", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
    started = time.monotonic()
    async with feed.publishing():
        for _ in range(10_000):
            feed.unmatched(event)
        hooks_took = time.monotonic() - started
        await asyncio.sleep(0)  # let the publisher try, and fail
    assert hooks_took < 1.0
    assert (feed.pending, feed.dropped, feed.published) == (100, 9_900, 0)
    assert time.monotonic() - started < 3.0  # leaving waits flush_within at most, then gives up


def test_a_batch_from_a_newer_runtime_still_reads_and_garbage_does_not() -> None:
    newer = {
        "v": 2,
        "source": "h:1",
        "dropped": 0,
        "notes": [{"at": NOW, "kind": "finished", "outcome": "ok", "shard": 3}],
        "extra": True,
    }
    batch = decode(orjson.dumps(newer))
    assert batch is not None and batch.notes[0].outcome == "ok"
    assert decode(b"not json") is None
    assert decode(orjson.dumps({"notes": "no"})) is None


def test_the_view_filters_counts_and_shows_plain_cells() -> None:
    at = datetime.fromtimestamp(NOW, UTC)
    notes = (
        Note(at=at, kind="routed", functions=("a", "b"), bucket="in", key="k1"),
        Note(
            at=at,
            kind="finished",
            function="a",
            bucket="in",
            key="k1",
            outcome="ok",
            seconds=0.0123,
        ),
        Note(
            at=at,
            kind="finished",
            function="c",
            bucket="in",
            key="k2",
            outcome="retry",
            attempt=2,
            error="ConnectionError: reset",
        ),
        Note(at=at, kind="unmatched", bucket="in", key="k3"),
    )
    view = View({"a"})
    shown = view.add(Batch(v=1, source="h:1", dropped=4, notes=notes))
    assert shown == list(notes[:2])
    assert (view.counts["routed"], view.counts["ok"], view.dropped, view.shown) == (1, 1, 4, 2)
    assert cells_of(notes[1])[1:5] == ["a", "in/k1", "ok", "12.3 ms"]
    assert cells_of(notes[0])[1:4] == ["a, b", "in/k1", "routed"]
    assert cells_of(notes[2])[5] == "attempt 2: ConnectionError: reset"
    assert cells_of(notes[3])[1] == "-"
    everything = View(set())
    assert len(everything.add(Batch(v=1, source="h:1", notes=notes))) == 4
    everything.render()  # renders without a terminal
