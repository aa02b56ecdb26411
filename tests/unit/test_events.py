"""Event parsing: the four wire shapes, encoded keys, bad messages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from runtime.core.errors import EventError
from runtime.core.events import COPY, DATA_EVENTS, MULTIPART, POST, PUT, decode_key, parse


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


# Ceph RGW's documented event record (Ceph Object Gateway docs, "Event record"),
# verbatim: an unprefixed event name, the size as a string, empty versionId,
# metadata and tags as (empty) lists, Ceph's own eventId and opaqueData.
CEPH_DOCUMENTED = b"""{"Records":[
    {
        "eventVersion":"2.1",
        "eventSource":"ceph:s3",
        "awsRegion":"us-east-1",
        "eventTime":"2019-11-22T13:47:35.124724Z",
        "eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"tester"},
        "requestParameters":{"sourceIPAddress":""},
        "responseElements":{
            "x-amz-request-id":"503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595",
            "x-amz-id-2":"14d2-zone1-zonegroup1"
        },
        "s3":{
            "s3SchemaVersion":"1.0",
            "configurationId":"mynotif1",
            "bucket":{
                "name":"mybucket1",
                "ownerIdentity":{"principalId":"tester"},
                "arn":"arn:aws:s3:us-east-1::mybucket1",
                "id":"503a4c37-85eb-47cd-8681-2817e80b4281.5332.38"
            },
            "object":{
                "key":"myimage1.jpg",
                "size":"1024",
                "eTag":"37b51d194a7513e45b56f6524f2d51f2",
                "versionId":"",
                "sequencer": "F7E6D75DC742D108",
                "metadata":[],
                "tags":[]
            }
        },
        "eventId":"",
        "opaqueData":"me@example.com"
    }
]}"""


@pytest.mark.parametrize("name", ["ObjectCreated:Put", "s3:ObjectCreated:Put"])
def test_ceph_documented_record_with_or_without_the_s3_prefix(name: str) -> None:
    # Ceph's docs show both spellings (older releases send the prefix).
    body = CEPH_DOCUMENTED.replace(b'"ObjectCreated:Put"', orjson.dumps(name))
    (ev,) = parse(body)
    assert (ev.source, ev.bucket, ev.key, ev.event_name) == (
        "ceph",
        "mybucket1",
        "myimage1.jpg",
        PUT,
    )
    assert ev.size == 1024  # a string on the wire
    assert ev.etag == "37b51d194a7513e45b56f6524f2d51f2"
    assert ev.version_id is None
    assert ev.sequencer == "F7E6D75DC742D108"
    assert ev.metadata == {}
    assert ev.event_time is not None and ev.event_time.microsecond == 124724


def test_ceph_lifecycle_expiration_is_not_a_data_event() -> None:
    body = CEPH_DOCUMENTED.replace(b"ObjectCreated:Put", b"ObjectLifecycle:Expiration:Current")
    (ev,) = parse(body)
    assert ev.event_name == "s3:ObjectLifecycle:Expiration:Current"
    assert ev.event_name not in DATA_EVENTS


def eventbridge(detail: dict[str, Any], kind: str = "Object Created") -> bytes:
    """AWS's documented EventBridge "Object Created" example (S3 user guide,
    "EventBridge event message structure"), with ``detail`` fields replaced."""
    return orjson.dumps(
        {
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": kind,
            "source": "aws.s3",
            "account": "111122223333",
            "time": "2021-11-12T00:00:00Z",
            "region": "ca-central-1",
            "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
            "detail": {
                "version": "0",
                "bucket": {"name": "amzn-s3-demo-bucket1"},
                "object": {
                    "key": "example-key",
                    "size": 5,
                    "etag": "b1946ac92492d2347c6235b4d2611184",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                    "sequencer": "617f08299329d189",
                },
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "source-ip-address": "1.2.3.4",
                "reason": "PutObject",
                **detail,
            },
        }
    )


def test_eventbridge_documented_object_created() -> None:
    (ev,) = parse(eventbridge({}))
    assert ev.source == "aws"
    assert (ev.bucket, ev.key, ev.event_name) == ("amzn-s3-demo-bucket1", "example-key", PUT)
    assert ev.size == 5
    assert ev.etag == "b1946ac92492d2347c6235b4d2611184"
    assert ev.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert ev.revision == ev.version_id
    assert ev.sequencer == "617f08299329d189"
    assert ev.event_time is not None and ev.event_time.year == 2021
    # Redelivered, the same event has the same id; a MinIO record of the same
    # write (same name, version, etag, sequencer) would too.
    assert parse(eventbridge({}))[0].event_id == ev.event_id


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        ("PutObject", PUT),
        ("POST Object", POST),
        ("CopyObject", COPY),
        ("CompleteMultipartUpload", MULTIPART),
        ("SomethingNew", PUT),  # "Object Created" always means new data
    ],
)
def test_eventbridge_reason_gives_the_event_name(reason: str, name: str) -> None:
    (ev,) = parse(eventbridge({"reason": reason}))
    assert ev.event_name == name


def test_eventbridge_multipart_unversioned_with_an_encoded_key() -> None:
    # A multipart etag ("-12") and a key with a space and a plus, URL-encoded as
    # S3 encodes keys in its notifications; no version-id on an unversioned bucket.
    obj = {
        "key": "raw/a+b%2Bc.zip",
        "size": 198524144,
        "etag": "4af981f98d22a0b9979da24b259e5e42-12",
        "sequencer": "0064D3901D00059242",
    }
    (ev,) = parse(eventbridge({"object": obj, "reason": "CompleteMultipartUpload"}))
    assert ev.key == "raw/a b+c.zip"
    assert ev.version_id is None and ev.revision == "4af981f98d22a0b9979da24b259e5e42-12"
    assert ev.event_name == MULTIPART


@pytest.mark.parametrize(
    ("deletion", "name"),
    [
        ("Permanently Deleted", "s3:ObjectRemoved:Delete"),
        ("Delete Marker Created", "s3:ObjectRemoved:DeleteMarkerCreated"),
    ],
)
def test_eventbridge_object_deleted_is_a_removal(deletion: str, name: str) -> None:
    obj = {
        "key": "example-key",
        "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
        "sequencer": "617f0837b476e463",
    }
    (ev,) = parse(
        eventbridge(
            {"object": obj, "deletion-type": deletion, "reason": "DeleteObject"}, "Object Deleted"
        )
    )
    assert ev.event_name == name
    assert ev.event_name not in DATA_EVENTS


def test_eventbridge_detail_types_about_no_data_are_no_event() -> None:
    assert parse(eventbridge({}, "Object Tags Added")) == []
    assert parse(eventbridge({}, "Object Restore Completed")) == []


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("detail"), "missing field 'detail'"),
        (lambda d: d["detail"].pop("object"), "missing field 'object'"),
        (lambda d: d.update(source="aws.ec2"), "not an S3 event"),
        (lambda d: d["detail"]["object"].update(key="%ff"), "malformed EventBridge event"),
    ],
)
def test_malformed_eventbridge_is_an_event_error(mutate: Any, reason: str) -> None:
    doc = orjson.loads(eventbridge({}))
    mutate(doc)
    body = orjson.dumps(doc)
    with pytest.raises(EventError) as info:
        parse(body)
    assert reason in info.value.reason
    assert info.value.body == body
