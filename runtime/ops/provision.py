"""``bucketfn init``: buckets, versioning, MinIO notification rules, RabbitMQ topology.

Idempotent: running it twice changes nothing. A bucket's notification
configuration is replaced whole by PutBucketNotificationConfiguration, so
rules this deployment does not own (their id lacks its queue prefix) are read
and kept.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.core.errors import ConfigError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from runtime.app.router import App
    from runtime.core.settings import Settings


def rule_prefix(settings: Settings) -> str:
    """Ids of the rules this deployment owns start with this."""
    return settings.queues.rule_prefix


def notification_rules(app: App, arn: str, owner: str) -> dict[str, list[dict[str, Any]]]:
    """Per bucket, the MinIO queue rules that deliver every event some route wants.

    One rule per distinct prefix (a prefix covered by a shorter one is dropped);
    suffixes and event types are matched precisely by the router, so rules never
    overlap and fan-out to several functions needs no duplicate rule.
    """
    by_bucket: dict[str, set[str]] = defaultdict(set)
    wanted: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        by_bucket[route.bucket].add(route.prefix)
        wanted[route.bucket] |= route.events
    rules: dict[str, list[dict[str, Any]]] = {}
    for bucket, prefixes in by_bucket.items():
        minimal = sorted(
            p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)
        )
        rules[bucket] = [
            {
                "Id": f"{owner}{prefix or '*'}",
                "QueueArn": arn,
                "Events": sorted(wanted[bucket]),
                **(
                    {"Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}
                    if prefix
                    else {}
                ),
            }
            for prefix in minimal
        ]
    return rules


async def merge_notifications(
    s3: S3Client, bucket: str, ours: list[dict[str, Any]], owner: str
) -> bool:
    """Replace bucketfn's rules on ``bucket``, keep everyone else's; True if changed."""
    current: Any = await s3.get_bucket_notification_configuration(Bucket=bucket)
    queues = [
        q for q in current.get("QueueConfigurations", []) if not q.get("Id", "").startswith(owner)
    ]
    theirs_other = {
        k: current[k]
        for k in ("TopicConfigurations", "LambdaFunctionConfigurations")
        if current.get(k)
    }
    mine = [q for q in current.get("QueueConfigurations", []) if q.get("Id", "").startswith(owner)]
    if _normal(mine) == _normal(ours):
        return False
    config: Any = {"QueueConfigurations": queues + ours, **theirs_other}
    await s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration=config,
    )
    return True


def _normal(rules: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...], str]]:
    out = []
    for r in rules:
        filt = r.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        prefix = next((f["Value"] for f in filt if f["Name"].lower() == "prefix"), "")
        out.append((r.get("Id", ""), r["QueueArn"], tuple(sorted(r["Events"])), prefix))
    return sorted(out)


def check_timeouts(app: App, settings: Settings) -> None:
    """Refuse a function whose timeout reaches the broker's consumer timeout.

    RabbitMQ closes the channel of a delivery unacked for ``consumer_timeout``
    and redelivers it: a handler allowed to run that long would be run again
    and again, each time cut off, never reaching its own timeout or a retry.
    The sweep holds its token for ``sweep_interval`` plus a pass, so that must
    stay under it too.
    """
    margin = 60.0  # the record write and the ack after the handler
    for route in app.routes:
        if route.retry.timeout + margin > settings.consumer_timeout:
            raise ConfigError(
                f"function {route.name!r} may run {route.retry.timeout:g} s, but the broker "
                f"redelivers what is unacked after {settings.consumer_timeout:g} s "
                "(BUCKETFN_CONSUMER_TIMEOUT, RabbitMQ's consumer_timeout): lower its "
                f"timeout below {settings.consumer_timeout - margin:g} s or raise the broker's"
            )
    if settings.sweep_interval * 2 > settings.consumer_timeout:
        raise ConfigError(
            f"BUCKETFN_SWEEP_INTERVAL ({settings.sweep_interval:g} s) must stay under half "
            f"the broker's consumer timeout ({settings.consumer_timeout:g} s)"
        )


async def init(app: App, settings: Settings) -> dict[str, Any]:
    """Provision everything ``app`` needs; returns what changed, for the CLI to print."""
    app.check(settings.output_bucket)
    check_timeouts(app, settings)
    report: dict[str, Any] = {"created_buckets": [], "notifications_changed": []}
    async with Broker.connect(settings) as broker:
        await broker.declare(settings, app)
    async with S3Storage.connect(settings) as storage:
        s3 = storage.client
        buckets = dict.fromkeys([*app.buckets, settings.output_bucket, *settings.extra_buckets])
        for bucket in buckets:
            if await storage.ensure_bucket(bucket, versioned=bucket in app.versioned):
                report["created_buckets"].append(bucket)
        owner = rule_prefix(settings)
        rules = notification_rules(app, settings.minio_target_arn, owner)
        for bucket in buckets:
            if await merge_notifications(s3, bucket, rules.get(bucket, []), owner):
                report["notifications_changed"].append(bucket)
    return report
