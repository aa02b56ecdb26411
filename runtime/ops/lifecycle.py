"""Data lifecycle: the S3 lifecycle rules ``bucketfn init`` keeps, derived from settings.

Four kinds, each off at 0 (``BUCKETFN_LIFECYCLE_*``):

- result records and the files written beside them expire after
  ``lifecycle_results_days`` (off by default);
- quarantined data (``lifecycle_quarantine``: the lake's rejected rows) after
  ``lifecycle_quarantine_days``;
- noncurrent versions in the app's versioned buckets after
  ``lifecycle_noncurrent_days`` (with the delete markers left behind);
- incomplete multipart uploads are aborted after ``lifecycle_abort_multipart_days``.

A bucket's lifecycle configuration is replaced whole by
PutBucketLifecycleConfiguration, so, as with notification rules, the rules
this deployment does not own (their id lacks its rule prefix) are read and
written back unchanged, and nothing is written when ours are already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.core.errors import ConfigError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from runtime.app.router import App
    from runtime.core.settings import Settings

DAY = 86400.0
NO_CONFIGURATION = "NoSuchLifecycleConfiguration"


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleRule:
    """One lifecycle rule on the keys under ``prefix``; a field at 0 is no action."""

    id: str
    prefix: str = ""
    expire_days: int = 0
    noncurrent_days: int = 0
    abort_multipart_days: int = 0

    def to_config(self) -> dict[str, Any]:
        """The ``Rules`` entry for PutBucketLifecycleConfiguration."""
        rule: dict[str, Any] = {
            "ID": self.id,
            "Status": "Enabled",
            "Filter": {"Prefix": self.prefix},
        }
        if self.expire_days:
            rule["Expiration"] = {"Days": self.expire_days}
        if self.noncurrent_days:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.noncurrent_days}
            # Once its noncurrent versions are gone, a deleted object's marker is alone:
            # remove it too, or listings of versions fill with them.
            rule.setdefault("Expiration", {"ExpiredObjectDeleteMarker": True})
        if self.abort_multipart_days:
            rule["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": self.abort_multipart_days
            }
        return rule


def shape(rule: Mapping[str, Any]) -> tuple[object, ...]:
    """What a rule does, comparable between the rule written and the rule read back."""
    filt = rule.get("Filter") or {}
    expiration = rule.get("Expiration") or {}
    return (
        rule.get("ID", ""),
        rule.get("Status", ""),
        filt.get("Prefix", rule.get("Prefix", "")),
        repr(sorted((k, repr(v)) for k, v in filt.items() if k != "Prefix")),
        expiration.get("Days", 0),
        bool(expiration.get("ExpiredObjectDeleteMarker", False)),
        (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays", 0),
        (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation", 0),
    )


def lifecycle_rules(
    app: App, settings: Settings, buckets: Iterable[str], *, abort_multipart: bool = True
) -> dict[str, list[LifecycleRule]]:
    """Per bucket of ``buckets``, the rules this deployment wants there.

    ``abort_multipart`` is false for stores that refuse that rule (MinIO).
    """
    owner = settings.queues.rule_prefix
    wanted: dict[str, list[LifecycleRule]] = {b: [] for b in dict.fromkeys(buckets)}
    if settings.lifecycle_results_days and settings.output_bucket in wanted:
        # Per function (and the API's jobs), not the whole bucket: the output
        # bucket also holds the sweep's checkpoints and maybe others' data.
        prefixes = [f"{r.name}/" for r in app.routes] + ["jobs/"]
        wanted[settings.output_bucket] += [
            LifecycleRule(
                id=f"{owner}results:{p}", prefix=p, expire_days=settings.lifecycle_results_days
            )
            for p in dict.fromkeys(prefixes)
        ]
    if settings.lifecycle_quarantine_days:
        for entry in settings.lifecycle_quarantine:
            bucket, _, prefix = entry.partition("/")
            if bucket in wanted:
                wanted[bucket].append(
                    LifecycleRule(
                        id=f"{owner}quarantine:{prefix}",
                        prefix=prefix,
                        expire_days=settings.lifecycle_quarantine_days,
                    )
                )
    if settings.lifecycle_noncurrent_days:
        for bucket in app.versioned & wanted.keys():
            wanted[bucket].append(
                LifecycleRule(
                    id=f"{owner}noncurrent", noncurrent_days=settings.lifecycle_noncurrent_days
                )
            )
    if settings.lifecycle_abort_multipart_days and abort_multipart:
        for rules in wanted.values():
            rules.append(
                LifecycleRule(
                    id=f"{owner}abort-multipart",
                    abort_multipart_days=settings.lifecycle_abort_multipart_days,
                )
            )
    return wanted


def check_lifecycle(app: App, settings: Settings) -> None:
    """Refuse a noncurrent-version expiry that a late event could outlive.

    A stale event reads its own version of the object; if that version had
    already expired, the event would end as a dead letter for an object that
    was fine. So versions must outlive every function's ``max_age``.
    """
    days = settings.lifecycle_noncurrent_days
    if not days:
        return
    for route in app.routes:
        if route.bucket in app.versioned and route.retry.max_age >= days * DAY:
            raise ConfigError(
                f"function {route.name!r} accepts events up to {route.retry.max_age:g} s old, "
                f"but noncurrent versions in {route.bucket!r} expire after {days} days "
                "(BUCKETFN_LIFECYCLE_NONCURRENT_DAYS): raise it or lower the max_age"
            )


async def current_rules(s3: S3Client, bucket: str) -> tuple[list[dict[str, Any]], str]:
    """The bucket's lifecycle rules (none is not an error) and the server's name."""
    try:
        resp: Any = await s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except s3.exceptions.ClientError as exc:
        response: Any = exc.response
        if response.get("Error", {}).get("Code") != NO_CONFIGURATION:
            raise
        return [], _server(response)
    return list(resp.get("Rules", [])), _server(resp)


def _server(response: Mapping[str, Any]) -> str:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return str(headers.get("server", ""))


def is_minio(server: str) -> bool:
    """MinIO names itself in every response's ``Server`` header."""
    return server.lower().startswith("minio")


async def merge_lifecycle(
    s3: S3Client, bucket: str, ours: list[LifecycleRule], owner: str, current: list[dict[str, Any]]
) -> bool:
    """Replace ``owner``'s lifecycle rules on ``bucket`` with ``ours``; True if changed."""
    theirs = [r for r in current if not str(r.get("ID", "")).startswith(owner)]
    mine = [r for r in current if str(r.get("ID", "")).startswith(owner)]
    wanted = [r.to_config() for r in ours]
    if sorted(map(shape, mine)) == sorted(map(shape, wanted)):
        return False
    rules: Any = theirs + wanted
    if rules:
        await s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules}
        )
    else:  # S3 refuses an empty configuration: the way to have none is to delete it
        await s3.delete_bucket_lifecycle(Bucket=bucket)
    return True


async def apply(s3: S3Client, app: App, settings: Settings, buckets: Iterable[str]) -> list[str]:
    """Bring the lifecycle rules of ``buckets`` in line with the settings; the changed ones."""
    owner = settings.queues.rule_prefix
    changed: list[str] = []
    for bucket in dict.fromkeys(buckets):
        current, server = await current_rules(s3, bucket)
        wanted = lifecycle_rules(app, settings, [bucket], abort_multipart=not is_minio(server))
        if await merge_lifecycle(s3, bucket, wanted[bucket], owner, current):
            changed.append(bucket)
    return changed


async def remove(s3: S3Client, owner: str, buckets: Iterable[str]) -> None:
    """Remove every lifecycle rule ``owner`` added (a test run's, a retired deployment's)."""
    for bucket in dict.fromkeys(buckets):
        current, _ = await current_rules(s3, bucket)
        await merge_lifecycle(s3, bucket, [], owner, current)
