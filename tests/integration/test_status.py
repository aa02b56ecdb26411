"""``bucketfn status`` on real RabbitMQ and MinIO: right figures, nothing consumed or reordered."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import orjson
import pytest

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.adapters.notify import target_stats
from runtime.core.records import Invocation, dumps
from runtime.core.settings import Settings
from runtime.engine.health import Health
from runtime.http import Metrics, running
from runtime.ops.status import Report, Row, gather
from tests.servers import (
    dead_letter,
    declared,
    deployment_env,
    make_settings,
    probe_event,
    queue_contents,
    require_minio,
    require_rabbitmq,
    s3_client,
)

ROOT = Path(__file__).resolve().parents[2]
router = Router()


@router.function(bucket="job-inputs", prefix="status/", name="status_probe")
async def status_probe(event: ObjectEvent, ctx: Context) -> None:
    return None


APP = App([router])
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def deployment() -> AsyncIterator[tuple[Settings, Broker]]:
    settings = make_settings()
    await require_rabbitmq(settings)
    require_minio(s3_client(settings))
    with contextlib.suppress(Exception):
        s3_client(settings).create_bucket(Bucket=settings.output_bucket)
    async with declared(settings, APP) as broker:
        yield settings, broker


async def fill(settings: Settings, broker: Broker) -> None:
    q = settings.queues
    # Out of time order on purpose: the head is the oldest by position, the last by time.
    for n, (at, msg) in enumerate(
        [(T0, "first"), (T0 + timedelta(hours=2), "newest"), (T0 + timedelta(hours=1), "middle")]
    ):
        dl = dead_letter("status_probe", n, at, msg)
        await broker.publish(q.dead_letter("status_probe"), dumps(dl), message_id=dl.id)
    for n in range(3, 7):
        inv = Invocation(function="status_probe", event=probe_event(n))
        await broker.publish(q.function("status_probe"), dumps(inv), message_id=f"inv-{n}")


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that takes nothing (its queue stays empty); it is only counted."""


def row(report: Report, function: str | None) -> Row:
    return next(r for r in report.rows if r.function == function)


async def test_figures_are_right_and_nothing_moves(deployment: tuple[Settings, Broker]) -> None:
    settings, broker = deployment
    q = settings.queues
    await fill(settings, broker)
    dlq, work = q.dead_letter("status_probe"), q.function("status_probe")
    before = {name: await queue_contents(settings, name) for name in (dlq, work)}
    assert len(before[dlq]) == 3 and len(before[work]) == 4

    metrics = Metrics(["status_probe"])
    metrics.inflight.labels("status_probe").inc(2)
    health = Health()
    health.consuming((work,))
    health.storage_ok()
    here = settings.model_copy(update={"metrics_address": "127.0.0.1:0"})
    async with (
        running(here, metrics, health) as port,
        broker.channel() as channel,  # a consumer on the (empty) ingress, to be counted
    ):
        ingress = await channel.declare_queue(q.ingress, passive=True)
        await ingress.consume(ignore)
        at = settings.model_copy(update={"metrics_address": f"127.0.0.1:{port}"})
        report = await gather(at, APP)
        too_many = await gather(at, APP, read=2)

    assert report.ok
    *servers, notify = report.servers
    assert [(s.name, s.ok, s.detail) for s in servers] == [
        ("rabbitmq", True, "ok"),
        ("s3", True, "ok"),
        ("runtime", True, "ready"),
    ]
    # MinIO's own counters for the deployment's target (what it failed to deliver), as
    # MinIO gives them: earlier tests restart the broker under uploads, which may cost an event.
    stats = await target_stats(settings)
    assert stats is not None
    assert (notify.name, notify.ok) == ("notify", stats.lost == 0)
    assert notify.detail.startswith(f"sent {stats.total}, failed {stats.failed}, "), notify.detail
    dispatcher, fn = row(report, None), row(report, "status_probe")
    assert dispatcher.depth is not None and dispatcher.depth.consumers == 1
    assert fn.depth is not None and (fn.depth.messages, fn.depth.consumers) == (4, 0)
    assert fn.inflight == 2
    assert fn.retrying == 0
    assert fn.letters is not None and (fn.letters.count, fn.letters.read) == (3, True)
    assert fn.letters.oldest == T0
    assert fn.letters.last is not None and fn.letters.last.error == "newest"
    summary = report.summary()["functions"][0]
    assert summary["dead_letters"]["last_error"]["error"] == "newest"
    assert summary["dead_letters"]["oldest_age_seconds"] > 0

    # More entries than it may read: counted, not read (a partial read would reorder).
    capped = row(too_many, "status_probe").letters
    assert capped is not None and (capped.count, capped.read, capped.last) == (3, False, None)

    # Nothing was consumed, nothing reordered — though `queue_contents` gave every entry back
    # before, which is when a partial read would have rotated them.
    assert {name: await queue_contents(settings, name) for name in (dlq, work)} == before


async def test_cli_json_and_a_missing_deployment(deployment: tuple[Settings, Broker]) -> None:
    settings, broker = deployment
    await fill(settings, broker)
    env = {
        **deployment_env(settings),
        "BUCKETFN_METRICS_ADDRESS": "127.0.0.1:1",  # no runtime there: advisory, not a failure
    }
    app = "tests.integration.test_status:APP"
    shown = await asyncio.to_thread(bucketfn, "status", "--app", app, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert doc["ok"] is True
    stats = await target_stats(settings)
    assert stats is not None
    assert {s["name"]: s["ok"] for s in doc["servers"]} == {
        "rabbitmq": True,
        "s3": True,
        "notify": stats.lost == 0,
        "runtime": False,
    }
    (fn,) = doc["functions"]
    assert (fn["function"], fn["messages"], fn["dead_letters"]["count"]) == ("status_probe", 4, 3)
    assert fn["in_flight"] is None
    assert "guest" not in shown.stdout  # the AMQP URL's credentials never show

    table = await asyncio.to_thread(bucketfn, "status", "--app", app, env=env)
    assert table.returncode == 0, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("status_probe"))
    assert line.split()[1:3] == ["4", "0"] and "InputError: newest" in line

    elsewhere = {**env, "BUCKETFN_QUEUE_PREFIX": settings.queue_prefix + "-none"}
    missing = await asyncio.to_thread(bucketfn, "status", "--app", app, "--json", env=elsewhere)
    assert missing.returncode == 1
    assert orjson.loads(missing.stdout)["functions"][0]["missing"]


def bucketfn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
