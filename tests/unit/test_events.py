"""Event parsing: the three wire shapes, encoded keys, bad messages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from runtime.core.errors import EventError
from runtime.core.events import MULTIPART, PUT, decode_key, parse


def minio(key: str, *, name: str = PUT, version: str | None = None) -> bytes:
    """A message as MinIO's AMQP target sends it (captured shape)."""
    obj: dict[str, Any] = {
        "key": key,
        "size": 12,
        "eTag": "6f5902ac237024bdd0c176cb93063dc4",
        "contentType": "text/csv",
        "userMetadata": {"X-Amz-Meta-Owner": "ada", "content-type": "text/csv"},
        "sequencer": "187A1B2C3D4E5F60",
    }
    if version:
        obj["versionId"] = version
    return orjson.dumps(
        {
            "EventName": name,
            "Key": f"job-inputs/{key}",
            "Records": [
                {
                    "eventVersion": "2.0",
                    "eventSource": "minio:s3",
                    "awsRegion": "",
                    "eventTime": "2026-11-22T00:16:39.420Z",
                    "eventName": name,
                    "userIdentity": {"principalId": "minioadmin"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {"x-amz-request-id": "187A1B2C3D4E5F60"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "Config",
                        "bucket": {"name": "job-inputs", "arn": "arn:aws:s3:::job-inputs"},
                        "object": obj,
                    },
                    "source": {"host": "127.0.0.1", "port": "", "userAgent": "Boto3"},
                }
            ],
        }
    )


def test_minio_shape() -> None:
    (ev,) = parse(minio("uploads/a.csv", version="v-1"))
    assert ev.source == "minio"
    assert (ev.bucket, ev.key, ev.event_name) == ("job-inputs", "uploads/a.csv", PUT)
    assert ev.etag == "6f5902ac237024bdd0c176cb93063dc4"
    assert ev.version_id == "v-1"
    assert ev.revision == "v-1"
    assert ev.metadata == {"owner": "ada"}
    assert ev.event_time is not None and ev.event_time.year == 2026


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("uploads/a+b.csv", "uploads/a b.csv"),
        ("uploads/a%2Bb.csv", "uploads/a+b.csv"),
        ("uploads%2Fnested%2Fx.csv", "uploads/nested/x.csv"),
        ("uploads/100%25.csv", "uploads/100%.csv"),
        ("uploads/%E6%97%A5%E6%9C%AC+%C3%BC.csv", "uploads/日本 ü.csv"),
    ],
)
def test_keys_are_decoded_like_go_query_escape(encoded: str, decoded: str) -> None:
    (ev,) = parse(minio(encoded))
    assert ev.key == decoded
    assert decode_key(encoded) == decoded


def test_aws_shape_gets_s3_prefix_on_event_name() -> None:
    body = orjson.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "eventName": "ObjectCreated:CompleteMultipartUpload",
                    "s3": {
                        "bucket": {"name": "b"},
                        "object": {"key": "k+1", "size": 5, "eTag": "abc", "sequencer": "0A"},
                    },
                }
            ]
        }
    )
    (ev,) = parse(body)
    assert (ev.source, ev.event_name, ev.key, ev.version_id) == ("aws", MULTIPART, "k 1", None)


def test_ceph_shape_with_list_metadata() -> None:
    body = orjson.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.2",
                    "eventSource": "ceph:s3",
                    "eventName": "ObjectCreated:Put",
                    "eventId": "1700000000.123.abc",
                    "s3": {
                        "bucket": {"name": "b", "id": "x"},
                        "object": {
                            "key": "dir/f.csv",
                            "size": 1,
                            "eTag": "e1",
                            "versionId": "",
                            "metadata": [{"key": "x-amz-meta-team", "val": "data"}],
                        },
                    },
                }
            ]
        }
    )
    (ev,) = parse(body)
    assert ev.source == "ceph"
    assert ev.metadata == {"team": "data"}
    assert ev.version_id is None  # Ceph sends "" for unversioned objects


def test_event_id_is_stable_and_distinguishes_writes() -> None:
    a1, a2 = parse(minio("uploads/a.csv"))[0], parse(minio("uploads/a.csv"))[0]
    b = parse(minio("uploads/a.csv", version="v2"))[0]
    assert a1.event_id == a2.event_id
    assert a1.event_id != b.event_id


def test_store_test_event_is_no_event() -> None:
    assert parse(b'{"Event": "s3:TestEvent", "Bucket": "b"}') == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00\xffnot json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{}", "no 'Records'"),
        (b'{"Records": []}', "no 'Records'"),
        (b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}', "missing field 's3'"),
        (b'{"Records": [42]}', "malformed record"),
        (
            b'{"Records": [{"eventName": "x", "s3": {"bucket": {"name": "b"},'
            b' "object": {"key": "%ff%fe"}}}]}',
            "malformed record",
        ),
    ],
)
def test_garbage_is_an_event_error_that_keeps_the_body(body: bytes, reason: str) -> None:
    with pytest.raises(EventError) as info:
        parse(body)
    assert reason in info.value.reason
    assert info.value.body == body


def _with_metadata(meta: object) -> bytes:
    return orjson.dumps(
        {
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "userMetadata": meta}},
                }
            ]
        }
    )


@pytest.mark.parametrize("meta", [["not", "pairs"], 5, "text", [1]])
def test_odd_metadata_shapes_are_event_errors_not_crashes(meta: object) -> None:
    # Before: a list of strings raised AttributeError out of the parser, which the
    # dispatcher did not classify and requeued at once (a hot loop on RabbitMQ 4).
    with pytest.raises(EventError) as info:
        parse(_with_metadata(meta))
    assert "metadata" in info.value.reason


def test_the_parser_raises_only_its_own_error_whatever_breaks() -> None:
    # A record whose bucket is a list breaks str()/dict assumptions deep inside.
    body = b'{"Records": [{"eventName": "x", "s3": {"bucket": [], "object": {"key": "k"}}}]}'
    with pytest.raises(EventError) as info:
        parse(body)
    assert info.value.reason.startswith("malformed record")
