"""MinIO's own counters of its notification target: the events it could not send.

MinIO drops an event, logging only, when its target fails it: the broker is
unreachable (the default profile keeps no ``queue_dir``), or the queue store
is full (``queue_limit`` in the durable profile). It does count them, in its
Prometheus metrics (``minio_notify_target_failed_events`` per target; the
notifier's ``events_skipped_total`` when its in-memory queue overflowed),
served at ``/minio/v2/metrics/cluster`` to a bearer token signed with the
caller's own secret key (HS512, issuer ``prometheus``) when its policy allows
``admin:Prometheus``. ``bucketfn status`` shows them, so a drop is seen.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning
from prometheus_client.parser import text_string_to_metric_families

from runtime.core.errors import StorageError
from runtime.core.names import target_id

if TYPE_CHECKING:
    from runtime.core.settings import Settings

PATH = "/minio/v2/metrics/cluster"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStats:
    """One notification target's counters since MinIO started (and the notifier's skips)."""

    target: str
    total: int  # events sent, or queued to be sent, to the target
    failed: int  # events it failed to send or to queue: lost, unless the sweep finds them
    queued: int  # events in its queue_dir now (durable profile)
    skipped: int  # events MinIO skipped before any target: its send queue was full

    @property
    def lost(self) -> int:
        """Events MinIO did not deliver."""
        return self.failed + self.skipped


def token(access_key: str, secret_key: str, ttl: float = 60.0) -> str:
    """The bearer token MinIO's metrics endpoint accepts (what ``mc admin prometheus`` makes)."""
    claims = {"exp": int(time.time() + ttl), "sub": access_key, "iss": "prometheus"}
    with warnings.catch_warnings():
        # The key is MinIO's secret key, as short as its owner chose: not ours to lengthen.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret_key, algorithm="HS512")


def parse(exposition: str, target: str) -> TargetStats | None:
    """The counters of ``target`` from a metrics page; None when MinIO lists no such target."""
    found: dict[str, float] = {}
    skipped = 0.0
    # By family name: the parser names a counter's samples `<family>_total`, and
    # MinIO's counters lack that suffix or have it, depending on the metric.
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if family.name == "minio_notify_events_skipped":
                skipped += sample.value  # one sample per server: summed over the cluster
            elif sample.labels.get("target_id") == target:
                found[family.name] = found.get(family.name, 0.0) + sample.value
    if not found:
        return None
    return TargetStats(
        target=target,
        total=int(found.get("minio_notify_target_total_events", 0)),
        failed=int(found.get("minio_notify_target_failed_events", 0)),
        queued=int(found.get("minio_notify_target_queue_length", 0)),
        skipped=int(skipped),
    )


async def target_stats(settings: Settings, within: float = 5.0) -> TargetStats | None:
    """The deployment's target's counters, read from MinIO; StorageError if it refuses."""
    bearer = token(settings.s3_access_key, settings.s3_secret_key.get_secret_value())
    url = settings.s3_endpoint.rstrip("/") + PATH
    try:
        async with httpx.AsyncClient(timeout=within) as client:
            response = await client.get(url, headers={"Authorization": f"Bearer {bearer}"})
    except httpx.HTTPError as exc:
        raise StorageError(f"MinIO's metrics: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise StorageError(
            f"MinIO's metrics refused ({response.status_code}): the identity needs "
            "admin:Prometheus, or the store is not MinIO"
        )
    return parse(response.text, target_id(settings.minio_target_arn))
