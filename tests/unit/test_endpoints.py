"""S3 endpoint resolution: once per bucket, the same answer as botocore's own."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import aioboto3
import botocore
from aiobotocore.config import AioConfig

from runtime.adapters.endpoints import UNREAD, share_endpoints

ENDPOINT = "http://127.0.0.1:9"  # never contacted: resolution is local


def test_the_uncached_parameters_are_read_by_no_rule() -> None:
    # If a botocore upgrade starts routing on the key, caching without it would
    # be wrong: this fails first.
    ruleset = Path(botocore.__file__).parent / "data/s3/2006-03-01/endpoint-rule-set-1.json.gz"
    doc = json.loads(gzip.decompress(ruleset.read_bytes()))
    assert set(doc["parameters"]) >= UNREAD
    rules = json.dumps(doc["rules"])
    for name in UNREAD:
        assert f'"ref": "{name}"' not in rules, name


async def test_one_resolution_per_bucket_with_the_same_urls() -> None:
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        provider: Any = client._ruleset_resolver._provider  # type: ignore[attr-defined]
        original = provider.resolve_endpoint
        calls: list[dict[str, Any]] = []

        def counting(**params: Any) -> Any:
            calls.append(params)
            return original(**params)

        provider.resolve_endpoint = counting
        assert share_endpoints(client)
        common = {"Region": "us-east-1", "Endpoint": ENDPOINT, "ForcePathStyle": True}
        urls = [
            provider.resolve_endpoint(Bucket=bucket, Key=key, **common).url
            for bucket in ("job-inputs", "job-outputs")
            for key in ("uploads/a.csv", "uploads/b.csv", "c d+e.csv")
        ]
        copy = provider.resolve_endpoint(
            Bucket="job-outputs", Key="x", CopySource="job-outputs/y", **common
        )
    assert len(calls) == 2  # one per bucket, whatever the keys
    assert urls == [f"{ENDPOINT}/job-inputs"] * 3 + [f"{ENDPOINT}/job-outputs"] * 3
    assert copy.url == original(Bucket="job-outputs", Key="z", **common).url


def test_a_client_without_the_expected_internals_is_left_alone() -> None:
    assert share_endpoints(object()) is False
