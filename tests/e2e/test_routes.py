"""routes check and routes explain against real MinIO: drift, shadowing, who wrote an object."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from runtime import App
from runtime.adapters.s3 import S3Storage
from runtime.adapters.topology import queue_arguments
from runtime.core.events import DATA_EVENTS
from runtime.core.names import Meta
from runtime.core.settings import Settings
from runtime.ops import lifecycle
from runtime.ops.provision import init, managed_buckets, merge_notifications, rule_prefix
from tests.servers import (
    delete_queues,
    make_settings,
    remove_rules,
    require_minio,
    require_rabbitmq,
    s3_client,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[2]
MODULE = """
from runtime import App, Router

router = Router()


async def probe(event, ctx):
    return None


router.function(bucket={bucket!r}, prefix="in/", name="probe")(probe)
router.function(bucket={bucket!r}, prefix="in/", name="second", overlaps=["probe"])(probe)
app = App([router])
"""


@dataclass
class Deployed:
    settings: Settings
    s3: S3Client
    app: App
    bucket: str
    module: Path


@pytest.fixture(scope="module")
async def deployed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployed]:
    """Two routes on a bucket of their own (no other deployment's rules on it), initialized."""
    settings = make_settings()
    await require_rabbitmq(settings)
    s3 = s3_client(settings)
    require_minio(s3)
    bucket = f"bft-routes-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("app")
    module = folder / f"routes_app_{uuid.uuid4().hex[:8]}.py"
    module.write_text(MODULE.format(bucket=bucket))
    spec = importlib.util.spec_from_file_location(module.stem, module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    app: App = loaded.app
    try:
        await init(app, settings)
        yield Deployed(settings=settings, s3=s3, app=app, bucket=bucket, module=module)
    finally:
        await remove_rules(settings, {bucket, settings.output_bucket})
        await delete_queues(settings, list(queue_arguments(settings, app)))
        async with S3Storage.connect(settings) as storage:
            with contextlib.suppress(Exception):
                await lifecycle.remove(
                    storage.client, rule_prefix(settings), managed_buckets(app, settings)
                )
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def routes(d: Deployed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "routes", *args, "--app", f"{d.module.stem}:app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "",
            "PYTHONPATH": f"{d.module.parent}:{ROOT}",
            "BUCKETFN_DEPLOYMENT": d.settings.deployment,
            "BUCKETFN_QUEUE_PREFIX": d.settings.queue_prefix,
            "BUCKETFN_S3_ENDPOINT": d.settings.s3_endpoint,
        },
    )


def checked(d: Deployed) -> tuple[int, list[tuple[str, list[str]]]]:
    shown = routes(d, "check", "--json")
    assert shown.returncode in (0, 1), shown.stderr
    doc = orjson.loads(shown.stdout)
    assert doc["server_checked"] is True
    return shown.returncode, [(p["kind"], p["functions"]) for p in doc["problems"]]


async def set_rules(d: Deployed, ours: list[dict[str, Any]]) -> None:
    async with S3Storage.connect(d.settings) as storage:
        await merge_notifications(storage.client, d.bucket, ours, rule_prefix(d.settings))


FOREIGN = "someone-else:in/"


def add_foreign(d: Deployed) -> None:
    current = d.s3.get_bucket_notification_configuration(Bucket=d.bucket)
    rule: Any = {
        "Id": FOREIGN,
        "QueueArn": d.settings.minio_target_arn,
        "Events": sorted(DATA_EVENTS),
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}},
    }
    d.s3.put_bucket_notification_configuration(
        Bucket=d.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [*current.get("QueueConfigurations", []), rule]
        },
    )


async def test_check_sees_drift_then_shadowing_and_init_heals_it(deployed: Deployed) -> None:
    d = deployed
    assert await asyncio.to_thread(checked, d) == (0, [])
    await set_rules(d, [])  # as if someone removed the rule, or init never ran
    code, found = await asyncio.to_thread(checked, d)
    assert code == 1
    assert found == [("drift", ["probe"]), ("drift", ["second"])]
    add_foreign(d)  # events flow again, but through a rule nobody here maintains
    code, found = await asyncio.to_thread(checked, d)
    assert code == 1
    assert found == [("shadowed", ["probe"]), ("shadowed", ["second"])]
    report = await init(d.app, d.settings)
    assert report["notifications_changed"] == [d.bucket]
    assert await asyncio.to_thread(checked, d) == (0, [])
    after = d.s3.get_bucket_notification_configuration(Bucket=d.bucket)
    assert FOREIGN in [q["Id"] for q in after.get("QueueConfigurations", [])]  # kept


async def test_check_reports_a_rule_the_routes_no_longer_derive(deployed: Deployed) -> None:
    d = deployed
    stale = {
        "Id": f"{rule_prefix(d.settings)}old/",
        "QueueArn": d.settings.minio_target_arn,
        "Events": sorted(DATA_EVENTS),
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "old/"}]}},
    }
    current = d.s3.get_bucket_notification_configuration(Bucket=d.bucket)
    mine = [
        q
        for q in current.get("QueueConfigurations", [])
        if q["Id"].startswith(rule_prefix(d.settings))
    ]
    await set_rules(d, [*mine, stale])  # type: ignore[list-item]
    code, found = await asyncio.to_thread(checked, d)
    assert (code, found) == (1, [("stale-rule", [])])
    await init(d.app, d.settings)
    assert await asyncio.to_thread(checked, d) == (0, [])


async def test_explain_reads_who_wrote_an_object_from_its_metadata(deployed: Deployed) -> None:
    d = deployed
    key = "in/written-by-probe.txt"
    d.s3.put_object(Bucket=d.bucket, Key=key, Body=b"x", Metadata={Meta.FUNCTION: "probe"})
    d.s3.put_object(Bucket=d.bucket, Key="in/plain.txt", Body=b"x")
    shown = await asyncio.to_thread(
        routes, d, "explain", f"s3://{d.bucket}/{key}", "--head", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert doc["written_by"] == "probe"
    assert doc["runs"] == ["second"]
    (probe,) = [f for f in doc["functions"] if f["function"] == "probe"]
    assert probe["check"] == "loop"
    plain = await asyncio.to_thread(
        routes, d, "explain", f"s3://{d.bucket}/in/plain.txt", "--head", "--json"
    )
    assert orjson.loads(plain.stdout)["runs"] == ["probe", "second"]
    missing = await asyncio.to_thread(
        routes, d, "explain", f"s3://{d.bucket}/in/nothing-here", "--head"
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
