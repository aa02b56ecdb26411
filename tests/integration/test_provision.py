"""bucketfn init on real MinIO and RabbitMQ: idempotent, and it never clobbers others' rules."""

from __future__ import annotations

from typing import Any

import pytest

from functions import app as functions_app
from runtime import App, ConfigError, Context, ObjectEvent, Router
from runtime.adapters.s3 import S3Storage
from runtime.core.settings import Settings
from runtime.ops.provision import init, merge_notifications, rule_prefix
from tests.servers import require_minio, s3_client

FOREIGN: dict[str, Any] = {
    "Id": "someone-else:archive",
    "QueueArn": "arn:minio:sqs::BUCKETFN:amqp",
    "Events": ["s3:ObjectRemoved:*"],
    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "archive/"}]}},
}


async def test_init_twice_changes_nothing_and_keeps_foreign_rules(settings: Settings) -> None:
    s3 = s3_client(settings)
    require_minio(s3)
    await init(functions_app, settings)
    current = s3.get_bucket_notification_configuration(Bucket="job-inputs")
    queues = current.get("QueueConfigurations", [])
    s3.put_bucket_notification_configuration(
        Bucket="job-inputs",
        NotificationConfiguration={"QueueConfigurations": [*queues, FOREIGN]},  # type: ignore[list-item]
    )
    try:
        again = await init(functions_app, settings)
        assert again == {
            "created_buckets": [],
            "notifications_changed": [],
            "lifecycle_changed": [],
            "polling": [],  # MinIO has notifications: no bucket falls back to polling
            "minio": {"target_added": False, "identities_changed": []},
            "broker": {"policy_changed": False, "identities_changed": []},
        }
        after = s3.get_bucket_notification_configuration(Bucket="job-inputs")
        ids = [q["Id"] for q in after.get("QueueConfigurations", [])]
        assert "someone-else:archive" in ids
        assert f"{rule_prefix(settings)}uploads/" in ids
        assert s3.get_bucket_versioning(Bucket="raw")["Status"] == "Enabled"
    finally:
        async with S3Storage.connect(settings) as storage:
            await merge_notifications(storage.client, "job-inputs", [], rule_prefix(settings))
            config = await storage.client.get_bucket_notification_configuration(Bucket="job-inputs")
            rest = [
                q for q in config.get("QueueConfigurations", []) if q.get("Id") != FOREIGN["Id"]
            ]
            await storage.client.put_bucket_notification_configuration(
                Bucket="job-inputs", NotificationConfiguration={"QueueConfigurations": rest}
            )


async def test_init_refuses_a_function_that_would_trigger_itself(settings: Settings) -> None:
    router = Router()

    @router.function(bucket="job-outputs", prefix="")
    async def echo(event: ObjectEvent, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="trigger itself"):
        await init(App([router]), settings)
