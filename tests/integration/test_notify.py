"""MinIO's notification counters read from a real MinIO (what ``bucketfn status`` shows)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from functions import app as functions_app
from runtime.adapters.notify import target_stats
from runtime.adapters.topology import queue_arguments
from runtime.core.settings import Settings
from runtime.ops.provision import init
from tests.servers import (
    delete_queues,
    make_settings,
    remove_rules,
    require_minio,
    s3_client,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def deployed() -> AsyncIterator[Settings]:
    settings = make_settings()
    require_minio(s3_client(settings))
    await init(functions_app, settings)  # a rule on job-inputs/uploads/ for this target
    yield settings
    await remove_rules(settings, {r.bucket for r in functions_app.routes})
    await delete_queues(settings, list(queue_arguments(settings, functions_app)))


async def test_every_event_minio_sends_is_counted_for_the_target(deployed: Settings) -> None:
    before = await target_stats(deployed)
    assert before is not None, "MinIO lists no target for BUCKETFN_MINIO_TARGET_ARN"
    s3 = s3_client(deployed)
    await asyncio.to_thread(
        s3.put_object, Bucket="job-inputs", Key=f"uploads/{unique()}/n.csv", Body=b"a\n1\n"
    )
    deadline = time.monotonic() + 30
    while True:
        now = await target_stats(deployed)
        assert now is not None
        if now.total > before.total:
            break
        assert time.monotonic() < deadline, "MinIO never counted the event"
        await asyncio.sleep(0.2)
    assert now.failed >= before.failed  # counters only grow
