"""``bucketfn init``: buckets, versioning, notification and lifecycle rules, RabbitMQ topology.

Idempotent: running it twice changes nothing. A bucket's notification
configuration is replaced whole by PutBucketNotificationConfiguration, so
rules this deployment does not own (their id lacks its queue prefix) are read
and kept; its lifecycle rules are merged the same way (``runtime.ops.lifecycle``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError

from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage, translate
from runtime.app.rules import Rule, derive, merged
from runtime.core.errors import ConfigError
from runtime.ops import access, identity, lifecycle

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from runtime.app.router import App
    from runtime.core.settings import Settings

log = structlog.get_logger("bucketfn.provision")


def rule_prefix(settings: Settings) -> str:
    """Ids of the rules this deployment owns start with this."""
    return settings.queues.rule_prefix


def notification_rules(app: App, arn: str, owner: str) -> dict[str, list[dict[str, Any]]]:
    """Per bucket, the MinIO queue rules that deliver every event some route wants.

    Derived in :func:`runtime.app.rules.derive`: one rule per distinct prefix (a
    prefix covered by a shorter one is dropped); suffixes and event types are
    matched precisely by the router, so rules never overlap and fan-out to
    several functions needs no duplicate rule.
    """
    return {b: [r.to_config() for r in rules] for b, rules in derive(app, arn, owner).items()}


UNSUPPORTED = frozenset({"NotImplemented", "501"})
"""Error codes of a store that has no bucket notifications at all (SeaweedFS
answers PutBucketNotificationConfiguration with NotImplemented)."""


class NoNotifications(Exception):
    """The store cannot deliver bucket events: the sweep alone will drive functions."""


async def merge_notifications(
    s3: S3Client, bucket: str, ours: list[dict[str, Any]], owner: str
) -> bool:
    """Replace bucketfn's rules on ``bucket``, keep everyone else's; True if changed.

    Raises :class:`NoNotifications` when the store does not implement them.
    """
    try:
        current: Any = await s3.get_bucket_notification_configuration(Bucket=bucket)
        config: Any = merged(current, [Rule.from_config(r) for r in ours], owner)
        if config is None:
            return False
        await s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=config
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in UNSUPPORTED:
            raise NoNotifications(str(exc)) from exc
        raise
    return True


async def live_rules(storage: S3Storage, buckets: Iterable[str]) -> dict[str, list[Rule] | None]:
    """Per bucket, the queue rules MinIO holds right now (``None``: no such bucket).

    What ``bucketfn routes check`` compares with the rules the routes derive.
    """
    s3 = storage.client
    found: dict[str, list[Rule] | None] = {}
    try:
        listed: Any = await s3.list_buckets()
        existing = {b["Name"] for b in listed.get("Buckets", [])}
        for bucket in dict.fromkeys(buckets):
            if bucket not in existing:
                found[bucket] = None
                continue
            config: Any = await s3.get_bucket_notification_configuration(Bucket=bucket)
            found[bucket] = [Rule.from_config(q) for q in config.get("QueueConfigurations", [])]
    except Exception as exc:
        # The adapter's one mapping: a store that cannot be read is a StorageError.
        raise translate(exc, "reading notification rules") from exc
    return found


def managed_buckets(app: App, settings: Settings) -> list[str]:
    """Every bucket ``init`` creates and configures, in a stable order."""
    return list(dict.fromkeys([*app.buckets, settings.output_bucket, *settings.extra_buckets]))


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
    lifecycle.check_lifecycle(app, settings)
    report: dict[str, Any] = {
        "created_buckets": [],
        "notifications_changed": [],
        "lifecycle_changed": [],
        "polling": [],
    }
    async with Broker.connect(settings) as broker:
        await broker.declare(settings, app)
    # The alternate exchange's policy and the runtime's and MinIO's identities.
    report["broker"] = await access.provision(settings)
    # MinIO: the deployment's own notification target (before a rule names it),
    # and the runtime's and the API's least-privilege identities.
    report["minio"] = await identity.provision(app, settings)
    async with S3Storage.connect(settings) as storage:
        s3 = storage.client
        buckets = managed_buckets(app, settings)
        for bucket in buckets:
            if await storage.ensure_bucket(bucket, versioned=bucket in app.versioned):
                report["created_buckets"].append(bucket)
        owner = rule_prefix(settings)
        rules = notification_rules(app, settings.minio_target_arn, owner)
        for bucket in buckets:
            try:
                if await merge_notifications(s3, bucket, rules.get(bucket, []), owner):
                    report["notifications_changed"].append(bucket)
            except NoNotifications as exc:
                # Not a failure: polling mode. Every runtime sweeps anyway, so
                # objects are found by listing, within one sweep interval.
                report["polling"].append(bucket)
                log.warning(
                    "polling mode: the store has no bucket notifications",
                    bucket=bucket,
                    sweep_interval=settings.sweep_interval,
                    error=str(exc),
                )
        report["lifecycle_changed"] = await lifecycle.apply(s3, app, settings, buckets)
    return report
