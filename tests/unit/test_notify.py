"""MinIO's notification counters, as ``bucketfn status`` reads them."""

from __future__ import annotations

import jwt

from runtime.adapters.notify import parse, token
from runtime.core.names import target_id

# Captured from MinIO's /minio/v2/metrics/cluster (two servers, one target each).
PAGE = """\
# HELP minio_notify_events_skipped_total Events that were skipped
# TYPE minio_notify_events_skipped_total counter
minio_notify_events_skipped_total{server="a:9000"} 2
minio_notify_events_skipped_total{server="b:9000"} 1
# TYPE minio_notify_target_failed_events counter
minio_notify_target_failed_events{server="a:9000",target_id="BUCKETFN",target_name="amqp"} 4
minio_notify_target_failed_events{server="b:9000",target_id="BUCKETFN",target_name="amqp"} 1
minio_notify_target_failed_events{server="a:9000",target_id="OTHER",target_name="amqp"} 9
# TYPE minio_notify_target_queue_length gauge
minio_notify_target_queue_length{server="a:9000",target_id="BUCKETFN",target_name="amqp"} 7
# TYPE minio_notify_target_total_events counter
minio_notify_target_total_events{server="a:9000",target_id="BUCKETFN",target_name="amqp"} 40
minio_notify_target_total_events{server="b:9000",target_id="BUCKETFN",target_name="amqp"} 2
"""


def test_counters_of_one_target_summed_over_servers() -> None:
    stats = parse(PAGE, "BUCKETFN")
    assert stats is not None
    assert (stats.total, stats.failed, stats.queued, stats.skipped) == (42, 5, 7, 3)
    assert stats.lost == 8


def test_a_target_minio_does_not_list_is_none() -> None:
    assert parse(PAGE, "MISSING") is None


def test_target_id_from_the_arn() -> None:
    assert target_id("arn:minio:sqs::BUCKETFN:amqp") == "BUCKETFN"
    assert target_id("arn:minio:sqs:us-east-1:TEAM_A:amqp") == "TEAM_A"


def test_token_is_what_minio_checks() -> None:
    secret = "s" * 64  # decoding with a short key warns (an error under pytest's filters)
    claims = jwt.decode(token("ak", secret), secret, algorithms=["HS512"], issuer="prometheus")
    assert claims["sub"] == "ak"
