"""Lifecycle rules from settings: what each bucket gets, the checks, and the merge."""

from __future__ import annotations

from typing import Any

import pytest

from functions import app as shipped
from runtime import App, ConfigError, Context, ObjectEvent, RetryPolicy, Router
from runtime.core.settings import Settings, load
from runtime.ops.lifecycle import (
    LifecycleRule,
    check_lifecycle,
    is_minio,
    lifecycle_rules,
    merge_lifecycle,
    shape,
)
from runtime.ops.provision import managed_buckets

OWNER = "bucketfn:"


async def fn(event: ObjectEvent, ctx: Context) -> None: ...


def ids(settings: Settings, *, abort: bool = True) -> dict[str, list[str]]:
    buckets = managed_buckets(shipped, settings)
    wanted = lifecycle_rules(shipped, settings, buckets, abort_multipart=abort)
    return {b: [r.id for r in rules] for b, rules in wanted.items()}


def test_defaults_quarantine_rejects_and_old_versions_and_abort_uploads() -> None:
    got = ids(Settings(), abort=False)
    assert got.pop("raw") == ["bucketfn:noncurrent"]
    assert got.pop("staging") == ["bucketfn:quarantine:_rejected/"]
    assert got.pop("job-outputs") == []  # results are kept unless asked: the sweep reads them
    assert all(not rules for rules in got.values())
    with_abort = ids(Settings())
    assert all(rules[-1] == "bucketfn:abort-multipart" for rules in with_abort.values())


def test_results_expire_per_function_and_for_jobs_never_the_whole_bucket() -> None:
    settings = Settings(lifecycle_results_days=14)
    wanted = lifecycle_rules(shipped, settings, ["job-outputs"], abort_multipart=False)
    prefixes = {r.prefix: r.expire_days for r in wanted["job-outputs"]}
    assert set(prefixes) == {f"{r.name}/" for r in shipped.routes} | {"jobs/"}
    assert set(prefixes.values()) == {14}
    assert "" not in prefixes  # .bucketfn/ holds the sweep's checkpoints


def test_zero_turns_each_off_and_unmanaged_buckets_get_nothing() -> None:
    off = Settings(
        lifecycle_quarantine_days=0, lifecycle_noncurrent_days=0, lifecycle_abort_multipart_days=0
    )
    assert all(not rules for rules in ids(off).values())
    elsewhere = Settings(lifecycle_quarantine=("archive/rejects/",))
    assert "archive" not in ids(elsewhere)
    assert ids(elsewhere, abort=False)["staging"] == []


def test_a_rule_is_what_s3_takes_and_reads_back() -> None:
    rule = LifecycleRule(id="bucketfn:noncurrent", noncurrent_days=30).to_config()
    assert rule == {
        "ID": "bucketfn:noncurrent",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    }
    read_back = {  # as MinIO returns it: other key order
        "Expiration": {"ExpiredObjectDeleteMarker": True},
        "ID": "bucketfn:noncurrent",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    }
    assert shape(rule) == shape(read_back)
    assert shape(rule) != shape({**read_back, "Status": "Disabled"})
    abort = LifecycleRule(id="x", abort_multipart_days=1).to_config()
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_versions_must_outlive_a_late_event() -> None:
    r = Router()
    r.function(bucket="raw", name="slowpoke", retry=RetryPolicy(max_age=3 * 86400))(fn)
    app = App([r], versioned=["raw"])
    with pytest.raises(ConfigError, match="BUCKETFN_LIFECYCLE_NONCURRENT_DAYS"):
        check_lifecycle(app, Settings(lifecycle_noncurrent_days=2))
    check_lifecycle(app, Settings(lifecycle_noncurrent_days=4))
    check_lifecycle(app, Settings(lifecycle_noncurrent_days=0))
    check_lifecycle(shipped, Settings())


def test_a_quarantine_entry_must_name_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETFN_LIFECYCLE_QUARANTINE", '["no-prefix-here"]')
    with pytest.raises(ConfigError, match="BUCKETFN_LIFECYCLE_QUARANTINE"):
        load()


def test_minio_is_told_by_its_server_header() -> None:
    assert is_minio("MinIO")
    assert not is_minio("AmazonS3")
    assert not is_minio("")


class FakeS3:
    """The three lifecycle calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def put_bucket_lifecycle_configuration(self, **kw: Any) -> None:
        self.calls.append(("put", kw["LifecycleConfiguration"]["Rules"]))

    async def delete_bucket_lifecycle(self, **kw: Any) -> None:
        self.calls.append(("delete", kw["Bucket"]))


FOREIGN = {"ID": "someone:tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}}


async def test_merge_keeps_others_rules_and_writes_only_a_change() -> None:
    s3: Any = FakeS3()
    ours = [LifecycleRule(id=f"{OWNER}noncurrent", noncurrent_days=30)]
    assert await merge_lifecycle(s3, "raw", ours, OWNER, [FOREIGN])
    assert s3.calls == [("put", [FOREIGN, ours[0].to_config()])]
    s3.calls.clear()
    current = [FOREIGN, ours[0].to_config()]
    assert not await merge_lifecycle(s3, "raw", ours, OWNER, current)
    assert s3.calls == []
    assert await merge_lifecycle(s3, "raw", [], OWNER, current)
    assert s3.calls == [("put", [FOREIGN])]


async def test_merge_deletes_a_configuration_left_empty() -> None:
    s3: Any = FakeS3()
    current = [LifecycleRule(id=f"{OWNER}noncurrent", noncurrent_days=30).to_config()]
    assert await merge_lifecycle(s3, "raw", [], OWNER, current)
    assert s3.calls == [("delete", "raw")]  # S3 refuses a configuration with no rules
