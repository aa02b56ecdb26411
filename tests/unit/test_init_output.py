"""``bucketfn init``'s text output says what it did on MinIO, as ``--json`` does."""

from __future__ import annotations

from runtime.cli.main import minio_line
from runtime.core.settings import Settings


def test_the_target_and_the_identities_are_printed() -> None:
    settings = Settings(deployment="bfx")
    added = minio_line(
        {"target_added": True, "identities_changed": ["bfx-runtime", "bfx-api"]}, settings
    )
    assert added == (
        "notification target arn:minio:sqs::BFX:amqp: added (MinIO restarted); "
        "MinIO users changed: bfx-runtime, bfx-api"
    )
    kept = minio_line({"target_added": False, "identities_changed": []}, settings)
    assert kept.endswith(": already loaded; MinIO users changed: none")


def test_a_store_without_the_admin_api_says_so() -> None:
    line = minio_line({"admin_api": False}, Settings())
    assert "admin API: not available" in line
