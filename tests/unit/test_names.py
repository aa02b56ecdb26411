"""Derived names and output keys that cannot escape their prefix."""

from __future__ import annotations

import pytest

from runtime.core.names import MAX_KEY_BYTES, Queues, result_key, safe_key


def test_queue_names_derive_from_one_prefix() -> None:
    q = Queues("p")
    assert (q.ingress, q.ingress_dlq) == ("p.ingress", "p.ingress.dlq")
    assert (q.function("f"), q.dead_letter("f"), q.retry("f", 1000)) == (
        "p.fn.f",
        "p.fn.f.dlq",
        "p.fn.f.retry.1000ms",
    )


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "a/../../b", "/abs/key", "a//b", "./x", "..", "a/b/.."],
)
def test_no_key_escapes_its_prefix(key: str) -> None:
    out = result_key("fn", key)
    segments = out.split("/")
    assert segments[0] == "fn"
    assert ".." not in segments and "." not in segments and "" not in segments


def test_ordinary_keys_are_kept_readable() -> None:
    assert result_key("fn", "uploads/a b+c%d ü.csv") == "fn/uploads/a b+c%d ü.csv/result.json"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a/../b", "a/%2E%2E/b"),  # these shared one result.json before
        ("a//b", "a/%00/b"),
        ("a/./b", "a/%2E/b"),
        ("a/%2E/b", "a/%252E/b"),
        ("a/../b", "a/b"),
    ],
)
def test_escaping_is_injective(one: str, other: str) -> None:
    assert safe_key(one) != safe_key(other)


def test_no_segment_exceeds_what_minio_accepts() -> None:
    # A key of 825-1024 bytes with one long segment used to make a segment > 255 bytes.
    key = "uploads/" + "s" * 900
    out = result_key("fn", key)
    assert max(len(seg.encode()) for seg in out.split("/")) <= 255
    assert out != result_key("fn", "uploads/" + "s" * 899 + "t")


def test_long_keys_fit_and_stay_distinct() -> None:
    k1, k2 = "x" * 1020 + "1", "x" * 1020 + "2"
    o1, o2 = result_key("fn", k1), result_key("fn", k2)
    assert o1 != o2
    assert len(o1.encode()) <= MAX_KEY_BYTES
