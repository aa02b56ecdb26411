"""Metrics from the observer seam, and the health endpoints, without servers.

Values are read back from the observer's own registry, so each test starts at
zero and asserts exact counts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from runtime import App, Context, InputError, ObjectEvent, Reject, RetryPolicy, Router
from runtime.core.errors import ConfigError
from runtime.core.names import Queues
from runtime.core.settings import load
from runtime.core.settings import split_address as split
from runtime.engine.dispatcher import Dispatcher
from runtime.engine.health import Health
from runtime.engine.outcome import Status
from runtime.http import Metrics, api
from runtime.http.server import listen
from runtime.testing import Harness, MemoryPublisher
from tests.unit.test_events import minio

router = Router()
gate, entered = asyncio.Event(), asyncio.Event()


@router.function(bucket="job-inputs", prefix="m/", retry=RetryPolicy(max_attempts=3))
async def measured(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.read(event)])
    if data == b"bad":
        raise InputError("bad bytes", where="byte 0")
    if data == b"reject":
        raise Reject("told to")
    if data == b"flaky":
        raise ConnectionError("reset by peer")
    if data == b"wait":
        entered.set()
        await gate.wait()
    return {"n": len(data)}


ROUTE = router.routes[0]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def value(m: Metrics, name: str, **labels: str) -> float:
    """A sample's value; a missing sample fails the test rather than reading as 0."""
    v = m.registry.get_sample_value(name, labels)
    assert v is not None, f"no sample {name}{labels}"
    return v


def invocations(m: Metrics, outcome: str) -> float:
    return value(m, "bucketfn_invocations_total", function="measured", outcome=outcome)


async def test_outcomes_are_counted_and_timed() -> None:
    m = Metrics(["measured"])
    h = Harness(observer=m)
    for key, data in [("m/ok", b"good"), ("m/bad", b"bad"), ("m/rej", b"reject")]:
        h.storage.put_bytes("job-inputs", key, data)
    h.storage.put_bytes("job-inputs", "m/flaky", b"flaky")
    ok = h.event("job-inputs", "m/ok")
    assert (await h.deliver(ROUTE, ok)).status is Status.OK
    assert (await h.deliver(ROUTE, ok)).status is Status.DUPLICATE
    assert (await h.deliver(ROUTE, h.event("job-inputs", "m/bad"))).status is Status.DEAD_LETTER
    assert (await h.deliver(ROUTE, h.event("job-inputs", "m/rej"))).status is Status.DEAD_LETTER
    flaky = h.event("job-inputs", "m/flaky")
    assert (await h.deliver(ROUTE, flaky)).status is Status.RETRY
    assert (await h.deliver(ROUTE, flaky, attempt=2)).status is Status.RETRY

    assert invocations(m, "ok") == 1
    assert invocations(m, "duplicate") == 1
    assert invocations(m, "dead-letter") == 2
    assert invocations(m, "retry") == 2
    assert invocations(m, "superseded") == 0
    assert value(m, "bucketfn_retries_total", function="measured") == 2
    assert value(m, "bucketfn_dead_letters_total", function="measured") == 2
    # Five deliveries ran the handler; the duplicate ran nothing and is not timed.
    assert value(m, "bucketfn_invocation_duration_seconds_count", function="measured") == 5
    assert value(m, "bucketfn_invocation_duration_seconds_sum", function="measured") > 0
    assert value(m, "bucketfn_inflight_invocations", function="measured") == 0
    assert value(m, "bucketfn_replays_total", function="measured") == 0


async def test_a_running_handler_is_in_flight_until_it_ends() -> None:
    m = Metrics()
    h = Harness(observer=m)
    h.storage.put_bytes("job-inputs", "m/wait", b"wait")
    gate.clear()
    entered.clear()
    running = asyncio.create_task(h.deliver(ROUTE, h.event("job-inputs", "m/wait")))
    await entered.wait()
    assert value(m, "bucketfn_inflight_invocations", function="measured") == 1
    gate.set()
    assert (await running).status is Status.OK
    assert value(m, "bucketfn_inflight_invocations", function="measured") == 0
    assert value(m, "bucketfn_invocation_duration_seconds_count", function="measured") == 1


async def test_a_cancelled_handler_leaves_flight_without_an_outcome() -> None:
    m = Metrics(["measured"])
    h = Harness(observer=m)
    h.storage.put_bytes("job-inputs", "m/wait", b"wait")
    gate.clear()
    entered.clear()
    running = asyncio.create_task(h.deliver(ROUTE, h.event("job-inputs", "m/wait")))
    await entered.wait()
    assert value(m, "bucketfn_inflight_invocations", function="measured") == 1
    running.cancel()  # as a drain past its grace, or a lost connection, does
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.sleep(0)  # the task's done callbacks run on the next turn
    assert value(m, "bucketfn_inflight_invocations", function="measured") == 0
    # Nothing ended, so nothing was counted or timed.
    assert all(invocations(m, status.value) == 0 for status in Status)
    assert value(m, "bucketfn_invocation_duration_seconds_count", function="measured") == 0


async def test_event_lag_is_measured_on_first_attempts_only() -> None:
    m = Metrics(["measured"], wall=lambda: NOW)
    h = Harness(observer=m)
    h.storage.put_bytes("job-inputs", "m/lag", b"good")
    h.storage.put_bytes("job-inputs", "m/retried", b"flaky")
    lagging = h.event("job-inputs", "m/lag").model_copy(
        update={"event_time": NOW - timedelta(seconds=2.5)}
    )
    await h.deliver(ROUTE, lagging)
    retried = h.event("job-inputs", "m/retried").model_copy(
        update={"event_time": NOW - timedelta(hours=1)}
    )
    await h.deliver(ROUTE, retried, attempt=2)  # its wait was the retry policy's
    assert value(m, "bucketfn_event_lag_seconds_count", function="measured") == 1
    assert value(m, "bucketfn_event_lag_seconds_sum", function="measured") == 2.5
    assert value(m, "bucketfn_event_lag_seconds_bucket", function="measured", le="2.5") == 1
    assert value(m, "bucketfn_event_lag_seconds_bucket", function="measured", le="1.0") == 0


async def test_a_replayed_invocation_is_counted_once() -> None:
    m = Metrics()
    h = Harness(observer=m)
    h.storage.put_bytes("job-inputs", "m/replayed", b"good")
    event = h.event("job-inputs", "m/replayed")
    from runtime.core.records import Invocation

    await h.worker(ROUTE).process(Invocation(function="measured", event=event, replays=1))
    assert value(m, "bucketfn_replays_total", function="measured") == 1
    assert invocations(m, "ok") == 1


async def test_dispatcher_events_routed_unmatched_and_rejected() -> None:
    m = Metrics()
    publisher = MemoryPublisher()
    d = Dispatcher(App([router]), publisher, Queues("t"), m)
    await d.route(minio("m/x"))
    await d.route(minio("m/y"))
    await d.route(minio("elsewhere/z"))
    m.rejected(None, "not json", "letter-1")  # what the dispatcher reports for a bad message
    m.rejected("measured", "not an invocation", "letter-2")
    assert value(m, "bucketfn_events_total", result="routed") == 2
    assert value(m, "bucketfn_events_total", result="unmatched") == 1
    assert value(m, "bucketfn_events_total", result="rejected") == 1
    assert value(m, "bucketfn_routed_total", function="measured") == 2
    assert value(m, "bucketfn_dead_letters_total", function="measured") == 1


def test_known_functions_start_at_zero_and_registries_are_separate() -> None:
    a, b = Metrics(["measured", "other"]), Metrics()
    a.events.labels("routed").inc()
    for outcome in ("ok", "duplicate", "superseded", "retry", "dead-letter"):
        assert value(a, "bucketfn_invocations_total", function="other", outcome=outcome) == 0
    assert value(a, "bucketfn_inflight_invocations", function="other") == 0
    assert value(a, "bucketfn_events_total", result="routed") == 1
    assert value(b, "bucketfn_events_total", result="routed") == 0
    assert b.registry.get_sample_value("bucketfn_routed_total", {"function": "other"}) is None


async def test_event_loop_lag_shows_a_blocked_loop() -> None:
    m = Metrics()
    watching = asyncio.create_task(m.watch_loop(every=0.05))
    await asyncio.sleep(0)  # the watcher is asleep now
    time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
    await asyncio.sleep(0.01)
    watching.cancel()
    assert value(m, "bucketfn_event_loop_lag_seconds") >= 0.2
    assert m.loop_lag_seconds >= 0.2


def test_addresses() -> None:
    assert split("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert split("[::1]:0") == ("::1", 0)
    for bad in ("9464", "host:", ":9464", "host:99999", "host:http"):
        with pytest.raises(ValueError, match="host:port"):
            split(bad)


def test_a_bad_metrics_address_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETFN_METRICS_ADDRESS", "nowhere")
    with pytest.raises(ConfigError, match="BUCKETFN_METRICS_ADDRESS"):
        load()
    monkeypatch.setenv("BUCKETFN_METRICS_ADDRESS", "0.0.0.0:9999")
    assert load().metrics_bind == ("0.0.0.0", 9999)


def test_readiness_names_what_is_missing() -> None:
    clock = [100.0]
    health = Health(clock=lambda: clock[0], storage_max_age=30)
    assert health.missing() == ["rabbitmq: not connected", "s3: not checked yet"]
    health.idle(connected=True)
    health.storage_failed("StorageError: connection refused")
    assert health.missing() == ["consumers: not started", "s3: StorageError: connection refused"]
    health.consuming(("q.ingress",))
    health.storage_ok()
    assert health.missing() == []
    clock[0] += 31  # the probe hung: its last answer is too old to vouch for S3
    assert health.missing() == ["s3: no answer for over 30 s"]
    health.storage_ok()
    health.idle(connected=False)
    assert health.missing() == ["rabbitmq: not connected"]


async def test_endpoints() -> None:
    m, health = Metrics(["measured"]), Health()
    transport = httpx.ASGITransport(app=api(m, health))
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
        alive = await client.get("/healthz")
        assert alive.status_code == 200
        assert alive.json()["status"] == "ok"

        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "ready": False,
            "missing": ["rabbitmq: not connected", "s3: not checked yet"],
        }
        health.consuming(("bft.ingress", "bft.fn.measured"))
        health.storage_ok()
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "queues": ["bft.ingress", "bft.fn.measured"]}

        m.events.labels("routed").inc()
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        # No preference stated: the classic text format every Prometheus version reads.
        assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'bucketfn_events_total{result="routed"} 1.0' in scraped.text
        assert "process_resident_memory_bytes" in scraped.text

        open_metrics = await client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.endswith("# EOF\n")


def test_a_taken_port_is_a_config_error_at_start() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="BUCKETFN_METRICS_ADDRESS"):
            listen("127.0.0.1", port)


def test_counters_have_no_created_series() -> None:
    m = Metrics(["measured"])
    assert m.registry.get_sample_value("bucketfn_events_created", {"result": "routed"}) is None
