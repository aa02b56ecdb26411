"""The observer seam: what the engine reports, and that a failing observer changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from runtime import App, Context, InputError, ObjectEvent, Router
from runtime.core.names import Queues
from runtime.core.records import Invocation
from runtime.engine.dispatcher import Dispatcher
from runtime.engine.observer import Observer
from runtime.engine.outcome import Outcome, Status
from runtime.testing import Harness, MemoryPublisher
from tests.unit.test_events import minio

router = Router()


@router.function(bucket="job-inputs", prefix="obs/")
async def watched(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.read(event)])
    if data == b"bad":
        raise InputError("bad bytes", where="byte 0")
    return {"n": len(data)}


ROUTE = router.routes[0]


class Recorder(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def dispatched(self, event: ObjectEvent, functions: Sequence[str]) -> None:
        self.seen.append(("dispatched", event.key, *functions))

    def unmatched(self, event: ObjectEvent) -> None:
        self.seen.append(("unmatched", event.key))

    def rejected(self, function: str | None, reason: str, letter_id: str) -> None:
        self.seen.append(("rejected", str(function), reason))

    def started(self, invocation: Invocation) -> None:
        self.seen.append(("started", invocation.event.key))

    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append(("finished", invocation.event.key, outcome.status.value))


class Broken(Observer):
    def finished(self, invocation: Invocation, outcome: Outcome, seconds: float) -> None:
        raise RuntimeError("a bug in a metrics exporter")


async def test_invocations_report_start_and_outcome() -> None:
    rec = Recorder()
    h = Harness(observer=rec)
    h.storage.put_bytes("job-inputs", "obs/a", b"good")
    h.storage.put_bytes("job-inputs", "obs/b", b"bad")
    ev_a, ev_b = h.event("job-inputs", "obs/a"), h.event("job-inputs", "obs/b")
    assert (await h.deliver(ROUTE, ev_a)).status is Status.OK
    assert (await h.deliver(ROUTE, ev_a)).status is Status.DUPLICATE
    assert (await h.deliver(ROUTE, ev_b)).status is Status.DEAD_LETTER
    assert rec.seen == [
        ("started", "obs/a"),
        ("finished", "obs/a", "ok"),
        ("finished", "obs/a", "duplicate"),  # no handler ran: no start
        ("started", "obs/b"),
        ("finished", "obs/b", "dead-letter"),
    ]


async def test_a_failing_observer_never_changes_the_outcome() -> None:
    from runtime.engine.observer import Observers

    h = Harness(observer=Observers([Broken(), Recorder()]))
    h.storage.put_bytes("job-inputs", "obs/c", b"good")
    outcome = await h.deliver(ROUTE, h.event("job-inputs", "obs/c"))
    assert outcome.status is Status.OK
    assert outcome.result is not None and outcome.result.output == {"n": 4}


async def test_the_dispatcher_reports_routed_unmatched_and_rejected() -> None:
    rec = Recorder()
    publisher = MemoryPublisher()
    d = Dispatcher(App([router]), publisher, Queues("t"), rec)
    await d.route(minio("obs/x"))
    await d.route(minio("elsewhere/y"))
    assert rec.seen == [("dispatched", "obs/x", "watched"), ("unmatched", "elsewhere/y")]
    assert [q for q, _, _ in publisher.messages] == ["t.fn.watched"]
