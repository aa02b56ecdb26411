"""bucketfn init's lifecycle rules on real MinIO: set, idempotent, merged with others' rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from functions import app as functions_app
from runtime.adapters.s3 import S3Storage
from runtime.core.settings import Settings
from runtime.ops import lifecycle
from runtime.ops.provision import init, managed_buckets, rule_prefix
from tests.servers import require_minio, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FOREIGN: Any = {
    "ID": "someone-else:scratch",
    "Status": "Enabled",
    "Filter": {"Prefix": "scratch/"},
    "Expiration": {"Days": 3},
}


def rules(s3: S3Client, bucket: str) -> dict[str, Any]:
    try:
        found = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchLifecycleConfiguration":
            raise
        return {}
    return {r["ID"]: r for r in found}


def put_foreign(s3: S3Client, bucket: str) -> None:
    current = list(rules(s3, bucket).values())
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [*current, FOREIGN]}
    )


def drop_foreign(s3: S3Client, bucket: str) -> None:
    rest = [r for i, r in rules(s3, bucket).items() if i != FOREIGN["ID"]]
    if rest:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rest})
    else:
        s3.delete_bucket_lifecycle(Bucket=bucket)


@pytest.fixture
def s3(settings: Settings) -> S3Client:
    client = s3_client(settings)
    require_minio(client)
    return client


async def remove_ours(settings: Settings) -> None:
    async with S3Storage.connect(settings) as storage:
        await lifecycle.remove(
            storage.client, rule_prefix(settings), managed_buckets(functions_app, settings)
        )


async def test_init_sets_lifecycle_rules_once_and_keeps_others(
    settings: Settings, s3: S3Client
) -> None:
    owner = rule_prefix(settings)
    keeping = settings.model_copy(update={"lifecycle_results_days": 7})
    try:
        first = await init(functions_app, keeping)
        assert {"raw", "staging", "job-outputs"} <= set(first["lifecycle_changed"])
        raw, staging, outputs = (rules(s3, b) for b in ("raw", "staging", "job-outputs"))
        assert raw[f"{owner}noncurrent"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
        assert raw[f"{owner}noncurrent"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
        quarantine = staging[f"{owner}quarantine:_rejected/"]
        assert quarantine["Filter"] == {"Prefix": "_rejected/"}
        assert quarantine["Expiration"] == {"Days": 30}
        assert outputs[f"{owner}results:csv_row_count/"]["Expiration"] == {"Days": 7}
        assert outputs[f"{owner}results:jobs/"]["Filter"] == {"Prefix": "jobs/"}
        # MinIO refuses AbortIncompleteMultipartUpload and aborts stale uploads itself.
        assert not any("abort-multipart" in i for b in (raw, staging, outputs) for i in b)

        put_foreign(s3, "staging")
        again = await init(functions_app, keeping)
        assert again["lifecycle_changed"] == []  # what MinIO reads back is what init wants
        after = rules(s3, "staging")
        assert after[FOREIGN["ID"]]["Expiration"] == {"Days": 3}
        assert after[f"{owner}quarantine:_rejected/"] == quarantine

        dropped = await init(functions_app, settings)  # results no longer expire
        assert dropped["lifecycle_changed"] == ["job-outputs"]
        assert not any(i.startswith(f"{owner}results:") for i in rules(s3, "job-outputs"))
        assert FOREIGN["ID"] in rules(s3, "staging")
    finally:
        await remove_ours(settings)
        drop_foreign(s3, "staging")
    for bucket in managed_buckets(functions_app, settings):
        assert not any(i.startswith(owner) for i in rules(s3, bucket)), bucket
