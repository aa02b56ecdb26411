"""Least privilege on MinIO: the runtime's and the API's identities, the deployment's target.

``bucketfn init`` runs as the admin identity and keeps, idempotently:

- the deployment's AMQP notification target (``notify_amqp:<ID>``), so its
  rules publish with its own routing key (added through the admin API, then
  MinIO restarts: targets load only at start);
- user ``<deployment>-runtime`` with policy ``<deployment>-runtime``: read (and
  list) what its routes trigger on, read and write the output bucket and the
  buckets its functions promote to (``writes_to``: raw → staging → curated);
- user ``<deployment>-api`` with policy ``<deployment>-api``: read what jobs run
  on and what they produce, write uploads under the upload prefix and job
  specs under ``jobs/``. Its own identity because every URL it presigns can do
  what it may: a leaked upload URL must not be able to overwrite a result.

Neither may delete, nor touch any bucket its routes do not name, nor call the
admin API. Policies derive from the routes, so a new route is a new grant at
the next ``init``, and a removed one is revoked.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from runtime.adapters.iam import Admin
from runtime.app.ledger import HISTORY
from runtime.app.rules import covering_prefixes
from runtime.core import logs, names
from runtime.core.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from runtime.app.router import App
    from runtime.core.settings import Settings

log = logs.get("bucketfn.identity")
S3 = "arn:aws:s3:::"
READ = ("s3:GetObject", "s3:GetObjectVersion")  # a version-pinned GET needs the second
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
LIST = ("s3:ListBucket",)
DELETE = ("s3:DeleteObject",)

# The target's settings besides its URL, exchange and routing key: as in
# infra/minio/notify.env (tests/unit/test_identity.py keeps them equal).
TARGET = {
    "durable": "on",
    "delivery_mode": "2",
    "mandatory": "on",
    "publisher_confirms": "on",
}


def _allow(actions: tuple[str, ...], resources: list[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": sorted(set(resources)),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _triggers(app: App) -> dict[str, list[str]]:
    """Per trigger bucket, the prefixes no other route's prefix covers."""
    found: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        found[route.bucket].add(route.prefix)
    return {b: covering_prefixes(p) for b, p in sorted(found.items())}


def _listing(bucket: str, prefixes: list[str]) -> dict[str, Any]:
    # A listing of the whole bucket carries no prefix at all, which no condition matches.
    if "" in prefixes:
        return _allow(LIST, [f"{S3}{bucket}"])
    return _allow(LIST, [f"{S3}{bucket}"], StringLike={"s3:prefix": [f"{p}*" for p in prefixes]})


def promoted(app: App) -> list[str]:
    """The buckets functions write to besides the output bucket (the lake's next layers)."""
    return sorted({b for r in app.routes for b in r.writes_to})


def runtime_policy(app: App, settings: Settings) -> dict[str, Any]:
    """What ``bucketfn run`` (workers, router, sweep, probes) needs, and nothing else."""
    triggers = _triggers(app)
    owned = [settings.output_bucket, *promoted(app)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _allow(READ, [f"{S3}{b}/{p}*" for b, ps in triggers.items() for p in ps]),
            # The sweep lists what the routes cover; a function may list its bucket.
            *(_listing(b, ps) for b, ps in triggers.items()),
            # Records, outputs, checkpoints and promotions; curated also reads its partials.
            _allow(READ + WRITE, [f"{S3}{b}/*" for b in owned]),
            _allow(LIST, [f"{S3}{b}" for b in owned]),
            # The ledger prunes per-revision entries that can no longer win; it
            # deletes nothing else (records, outputs and promotions are overwritten).
            _allow(DELETE, [f"{S3}{settings.output_bucket}/*/{HISTORY}/*"]),
        ],
    }


def api_policy(app: App, settings: Settings) -> dict[str, Any]:
    """What ``bucketfn api`` needs: its presigned URLs can do exactly this."""
    triggers = _triggers(app)
    out = settings.output_bucket
    readable = [f"{S3}{b}/{p}*" for b, ps in triggers.items() for p in ps]
    readable += [f"{S3}{b}/*" for b in [out, *promoted(app)]]
    readable.append(f"{S3}{settings.upload_bucket}/{settings.upload_prefix}*")
    return {
        "Version": "2012-10-17",
        "Statement": [
            # Inputs (a job's HEAD, the console), records, and outputs to presign.
            _allow(READ, readable),
            _allow(
                WRITE,
                [
                    f"{S3}{settings.upload_bucket}/{settings.upload_prefix}*",
                    f"{S3}{out}/{names.JOB_PREFIX}*",
                ],
            ),
            _allow(LIST, [f"{S3}{out}"]),  # the readiness probe lists an empty prefix
        ],
    }


def target_config(settings: Settings) -> dict[str, str] | None:
    """The ``notify_amqp`` key-values of the deployment's target (None without a URL)."""
    if settings.minio_amqp_url is None:
        return None
    return {
        "enable": "on",
        "url": settings.minio_amqp_url.get_secret_value(),
        "exchange": settings.exchange,
        "exchange_type": settings.exchange_type,
        "routing_key": settings.routing_key,
        **TARGET,
    }


async def ensure_target(admin: Admin, settings: Settings) -> bool:
    """The deployment's notification target is loaded; True if ``init`` had to add it.

    A target already there (MinIO's env, as ``make up`` sets for ``bucketfn``,
    or an earlier ``init``) is left as it is.
    """
    arn = settings.minio_target_arn
    if arn in await admin.arns():
        return False
    target = names.target_id(arn)
    config = target_config(settings)
    if config is None and target not in await admin.configured():
        raise ConfigError(
            f"MinIO has no notification target {arn} for deployment {settings.deployment!r}: "
            f"set BUCKETFN_MINIO_AMQP_URL (how MinIO reaches RabbitMQ) for init to add "
            f"notify_amqp:{target}, or configure MINIO_NOTIFY_AMQP_*_{target} on the server"
        )
    await admin.add_target(target, config)
    await admin.wait_for_arn(arn)
    return True


async def ensure_identities(admin: Admin, app: App, settings: Settings) -> list[str]:
    """The runtime's and the API's users and policies; returns the users that changed."""
    wanted = [
        ("runtime", settings.runtime_s3_secret_key, runtime_policy(app, settings)),
        ("api", settings.api_s3_secret_key, api_policy(app, settings)),
    ]
    changed: list[str] = []
    for role, secret, policy in wanted:
        if secret is None:
            continue
        user = settings.names.identity(role)
        if user == settings.s3_access_key:
            raise ConfigError(f"init must run as the admin identity, not as {user!r}")
        if await admin.ensure_identity(user, secret.get_secret_value(), user, policy):
            changed.append(user)
    return changed


async def provision(app: App, settings: Settings) -> dict[str, Any]:
    """Target and identities, for ``init``'s report.

    A store without MinIO's admin API (SeaweedFS in polling mode) has neither
    targets nor these users: skipped, unless identities were asked for.
    """
    async with Admin.connect(settings) as admin:
        try:
            await admin.arns()
        except StorageError as exc:
            if settings.runtime_s3_secret_key or settings.api_s3_secret_key:
                raise ConfigError(
                    "BUCKETFN_RUNTIME_S3_SECRET_KEY / BUCKETFN_API_S3_SECRET_KEY are set, but "
                    f"the store's admin API does not answer this identity: {exc}"
                ) from exc
            log.warning("no MinIO admin API: targets and identities left alone", error=str(exc))
            return {"admin_api": False}
        added = await ensure_target(admin, settings)
        identities = await ensure_identities(admin, app, settings)
    return {"target_added": added, "identities_changed": identities}
