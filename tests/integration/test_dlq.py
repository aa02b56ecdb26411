"""`bucketfn dlq`, on real RabbitMQ and MinIO: letters whose work has succeeded since."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.amqp import Broker
from runtime.core.letters import DeadLetter
from runtime.core.names import result_key
from runtime.core.records import ErrorInfo, Invocation, dumps
from runtime.core.settings import Settings
from runtime.engine.seen import Seen
from tests.servers import (
    declared,
    deployment_env,
    make_settings,
    require_minio,
    require_rabbitmq,
    s3_client,
)

ROOT = Path(__file__).resolve().parents[2]
router = Router()


@router.function(bucket="job-inputs", prefix="dlq-done/", name="dlq_probe")
async def probe(event: ObjectEvent, ctx: Context) -> None:
    """Never runs here: the test only reads and purges its dead-letter queue."""


APP = App([router])


@pytest.fixture
async def deployment() -> AsyncIterator[tuple[Settings, Broker]]:
    settings = make_settings()
    await require_rabbitmq(settings)
    require_minio(s3_client(settings))
    async with declared(settings, APP) as broker:
        yield settings, broker


def _letter(n: int, key: str) -> DeadLetter:
    event = ObjectEvent(
        event_id=f"done-{n}",
        event_name="s3:ObjectCreated:Put",
        bucket="job-inputs",
        key=key,
        etag=f"{n:032x}",
    )
    return DeadLetter(
        id=f"done-{n}-1-0",
        function="dlq_probe",
        function_version="v1",
        reason="permanent error",
        invocation=Invocation(function="dlq_probe", event=event),
        error=ErrorInfo(type="builtins.ConnectionError", message="reset", fingerprint="f"),
        dead_lettered_at=datetime.now(UTC),
    )


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "dlq", *args, "--app", "tests.integration.test_dlq:APP"],
        cwd=ROOT,
        env=deployment_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_letters_whose_work_succeeded_since_are_marked_and_purged_alone(
    deployment: tuple[Settings, Broker],
) -> None:
    settings, broker = deployment
    base = f"dlq-done/{uuid.uuid4().hex[:10]}"
    done, failed, moved = (_letter(n, f"{base}/{n}.csv") for n in (1, 2, 3))
    for letter in (done, failed, moved):
        await broker.publish(
            settings.queues.dead_letter("dlq_probe"), dumps(letter), message_id=letter.id
        )
    s3 = s3_client(settings)

    def record(letter: DeadLetter, revision: str) -> None:
        # What a later success leaves: a record of that revision, status ok.
        assert letter.invocation is not None
        s3.put_object(
            Bucket=settings.output_bucket,
            Key=result_key("dlq_probe", letter.invocation.event.key),
            Body=b'{"status": "ok"}',
            Metadata=Seen.stamp(
                function="dlq_probe", status="ok", revision=revision, sequencer=None
            ),
        )

    assert done.invocation is not None
    record(done, done.invocation.event.revision)
    record(moved, "another revision's etag")  # a success, but not for the letter's revision

    listed = await asyncio.to_thread(_cli, settings, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    marks = {e["id"]: e["done_since"] for e in orjson.loads(listed.stdout)}
    assert marks == {done.id: True, failed.id: False, moved.id: False}
    human = await asyncio.to_thread(_cli, settings, "ls")
    assert "DONE SINCE" in human.stdout and "1 entry marked DONE SINCE" in human.stdout

    purged = await asyncio.to_thread(_cli, settings, "purge", "--all", "--done", "--yes", "--json")
    assert purged.returncode == 0, purged.stderr
    assert orjson.loads(purged.stdout) == {"purged": [done.id]}
    left = await asyncio.to_thread(_cli, settings, "ls", "--json")
    assert sorted(e["id"] for e in orjson.loads(left.stdout)) == sorted([failed.id, moved.id])

    # Nothing done: --done purges nothing (an empty selection is not "every entry").
    again = await asyncio.to_thread(_cli, settings, "purge", "--all", "--done", "--yes", "--json")
    assert orjson.loads(again.stdout) == {"purged": []}
    still = await asyncio.to_thread(_cli, settings, "ls", "--json")
    assert len(orjson.loads(still.stdout)) == 2
