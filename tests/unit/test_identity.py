"""The MinIO policies derive from the routes; deployment names derive from one setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from functions import app as functions_app
from runtime import App, Context, ObjectEvent, Router
from runtime.core.errors import ConfigError
from runtime.core.names import Deployment, target_id
from runtime.core.settings import Settings
from runtime.ops.identity import TARGET, api_policy, runtime_policy, target_config

ROOT = Path(__file__).resolve().parents[2]
S = "arn:aws:s3:::"
# MinIO's one env name that is not its config key upper-cased (internal/event/target/amqp.go).
RENAMED = {"publishing_confirms": "publisher_confirms"}


def _grants(policy: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(action, resource, listed prefix or '') for every grant of ``policy``."""
    found: set[tuple[str, str, str]] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [""])
        for action in st["Action"]:
            for resource in st["Resource"]:
                found |= {(action, resource, p) for p in prefixes}
    return found


def _can(policy: dict[str, Any], action: str, resource: str, prefix: str = "") -> bool:
    return (action, resource, prefix) in _grants(policy)


def test_the_runtime_reads_triggers_and_writes_outputs_and_promotions() -> None:
    policy = runtime_policy(functions_app, Settings())
    # Triggers: uploads/ in job-inputs (csv_count, json_canonicalize), raw and staging.
    assert _can(policy, "s3:GetObject", f"{S}job-inputs/uploads/*")
    assert _can(policy, "s3:GetObjectVersion", f"{S}raw/*")  # version-pinned reads
    assert _can(policy, "s3:ListBucket", f"{S}job-inputs", "uploads/*")  # the sweep
    assert not _can(policy, "s3:ListBucket", f"{S}job-inputs")  # only under uploads/
    assert not _can(policy, "s3:GetObject", f"{S}job-inputs/*")
    assert not _can(policy, "s3:PutObject", f"{S}job-inputs/uploads/*")
    assert not _can(policy, "s3:PutObject", f"{S}raw/*")  # the raw layer is read-only to it
    # Outputs: records in job-outputs; the lake promotes raw → staging → curated.
    for bucket in ("job-outputs", "staging", "curated"):
        assert _can(policy, "s3:PutObject", f"{S}{bucket}/*")
        assert _can(policy, "s3:GetObject", f"{S}{bucket}/*")
        assert _can(policy, "s3:ListBucket", f"{S}{bucket}")
    actions = {a for a, _, _ in _grants(policy)}
    assert not any(a.startswith(("s3:PutBucket", "admin:")) for a in actions)
    assert "s3:CreateBucket" not in actions
    # It deletes only the ledger's per-revision entries, which it prunes.
    deletes = {r for a, r, _ in _grants(policy) if a.startswith("s3:Delete")}
    assert deletes == {f"{S}job-outputs/*/_history/*"}


def test_a_new_route_is_a_new_grant_and_nothing_else_is() -> None:
    router = Router()

    @router.function(bucket="photos", prefix="in/", writes_to=("thumbs",))
    async def thumb(event: ObjectEvent, ctx: Context) -> None:
        return None

    policy = runtime_policy(App([router]), Settings(output_bucket="out"))
    buckets = {r.removeprefix(S).split("/")[0] for _, r, _ in _grants(policy)}
    assert buckets == {"photos", "thumbs", "out"}
    assert _can(policy, "s3:GetObject", f"{S}photos/in/*")
    assert _can(policy, "s3:PutObject", f"{S}thumbs/*")


def test_the_api_writes_only_uploads_and_job_specs() -> None:
    policy = api_policy(functions_app, Settings())
    writes = {r for a, r, _ in _grants(policy) if a == "s3:PutObject"}
    assert writes == {f"{S}job-inputs/uploads/*", f"{S}job-outputs/jobs/*"}
    # It reads what it presigns: records and every output, inputs for a job's HEAD.
    for resource in (f"{S}job-outputs/*", f"{S}curated/*", f"{S}job-inputs/uploads/*"):
        assert _can(policy, "s3:GetObject", resource)


def test_the_default_deployment_keeps_the_names_in_use() -> None:
    settings = Settings()
    assert settings.deployment == "bucketfn"
    assert settings.routing_key == "bucketfn.ingress"
    assert settings.minio_target_arn == "arn:minio:sqs::BUCKETFN:amqp"
    assert settings.queue_prefix == "bucketfn"
    assert settings.names.identity("runtime") == "bucketfn-runtime"


def test_every_name_follows_the_deployment_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETFN_DEPLOYMENT", "blue")
    blue = Settings()
    assert (blue.routing_key, blue.minio_target_arn, blue.queue_prefix) == (
        "blue.ingress",
        "arn:minio:sqs::BLUE:amqp",
        "blue",
    )
    assert blue.queues.ingress == "blue.ingress"
    assert Settings(queue_prefix="blue-test-1").routing_key == "blue.ingress"
    assert Settings(routing_key="custom").routing_key == "custom"


def test_deployment_names_stay_one_to_one_with_their_targets() -> None:
    with pytest.raises(ValueError, match="deployment"):
        Settings(deployment="a-b")  # "a-b" and "a_b" would share target A_B
    assert Deployment("a_b").target_id == "A_B"
    assert target_id(Deployment("a_b").target_arn()) == "A_B"
    with pytest.raises(ConfigError):
        target_id("arn:aws:sqs:us-east-1:1:q")


def test_a_target_init_adds_is_the_one_notify_env_configures() -> None:
    env = {}
    for line in (ROOT / "infra/minio/notify.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            key = name.removeprefix("MINIO_NOTIFY_AMQP_").removesuffix("_BUCKETFN").lower()
            env[RENAMED.get(key, key)] = value
    config = target_config(Settings(minio_amqp_url=SecretStr("amqp://u:p@h:5672")))
    assert config is not None
    assert {k: v for k, v in config.items() if k != "url"} == env
    assert set(TARGET) < set(env)
    assert target_config(Settings()) is None  # no URL: init cannot add one
