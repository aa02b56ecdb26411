"""``bucketfn init`` on SeaweedFS: a store without notifications means polling mode.

SeaweedFS answers PutBucketNotificationConfiguration with NotImplemented. That
is not a failed init: the buckets, lifecycle rules and queues are still set up,
and the command says, on stdout and in its log, that the sweep will find new
objects by listing. Run as a user runs it: the real command, in a subprocess,
configured by environment variables.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson
import pytest

from runtime.adapters.topology import queue_arguments
from tests.polling.test_seaweedfs import APP, seaweedfs_settings
from tests.servers import delete_queues, remove_rules, require_rabbitmq

pytestmark = pytest.mark.e2e

APP_PATH = "tests.polling.test_seaweedfs:APP"


def _init(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "init", APP_PATH, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_init_on_a_store_without_notifications_selects_polling_mode() -> None:
    settings = seaweedfs_settings()
    await require_rabbitmq(settings)
    env = {
        **os.environ,
        "BUCKETFN_S3_ENDPOINT": settings.s3_endpoint,
        "BUCKETFN_S3_ACCESS_KEY": settings.s3_access_key,
        "BUCKETFN_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "BUCKETFN_QUEUE_PREFIX": settings.queue_prefix,
        "BUCKETFN_SWEEP_INTERVAL": "7",
    }
    try:
        text = await asyncio.to_thread(_init, env)
        assert text.returncode == 0, text.stderr
        assert "Traceback" not in text.stderr
        assert "polling mode: the store has no bucket notifications (job-inputs)" in text.stdout
        assert "every 7 s" in text.stdout
        assert "queues declared: ok" in text.stdout
        # The log line says so too, for whoever reads logs rather than a terminal.
        warnings = [orjson.loads(line) for line in text.stderr.splitlines() if line.startswith("{")]
        assert any(
            w["event"].startswith("polling mode") and w["bucket"] == "job-inputs" for w in warnings
        ), text.stderr

        # Idempotent, and machine-readable: the second run reports the same mode.
        js = await asyncio.to_thread(_init, env, "--json")
        assert js.returncode == 0, js.stderr
        report = orjson.loads(js.stdout)
        assert report["polling"] == ["job-inputs"]
        assert report["notifications_changed"] == []
        assert report["created_buckets"] == []
    finally:
        await delete_queues(settings, list(queue_arguments(settings, APP)))
        await remove_rules(settings, {"job-inputs"})
