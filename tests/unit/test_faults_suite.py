"""The fault suite's own logic, without servers: what it counts and what it sends.

``make faults`` is only as good as its arithmetic and its corpus, so both are
pinned here: a second version with other bytes is a duplicate, one with the
same bytes a rewrite, a redone history entry neither; the corpus has every
trigger the issue names, at least 150 inputs, and a bomb that really expands
to 2 GiB.
"""

from __future__ import annotations

import struct

from botocore.exceptions import ClientError

from tests.faults.corpus import BOMB_MEMBER, BOMB_MEMBERS, bomb, corpus, long_key
from tests.faults.effects import tally
from tests.faults.load import Item, put, rows
from tests.faults.table import Row, render


def test_other_bytes_are_a_duplicate_same_bytes_a_rewrite() -> None:
    counted = tally({"f/a/result.json": ["e1", "e2", "e1"], "f/b/result.json": ["e3"]})
    assert (counted.keys, counted.versions) == (2, 4)
    assert (counted.duplicated, counted.rewrites) == (1, 1)
    assert counted.duplicated_keys == ("f/a/result.json",)


def test_a_redone_history_entry_and_a_shared_total_are_no_duplicates() -> None:
    counted = tally(
        {"f/a/_history/0001-x": ["e1", "e2"], "curated/total.parquet": ["t1", "t2", "t3"]},
        shared=frozenset({"curated/total.parquet"}),
    )
    assert (counted.duplicated, counted.redone, counted.versions) == (0, 1, 5)


def _row(*, lost: int = 0, wrong: int = 0, duplicated: int = 0) -> Row:
    return Row(
        scenario="s",
        objects=3,
        results=3 - lost,
        lost=lost,
        wrong=wrong,
        duplicated=duplicated,
        writes=3,
        recovered_s=1.0,
    )


def test_a_row_fails_on_anything_lost_wrong_or_doubled() -> None:
    assert not _row().failed
    assert _row(lost=1).failed and _row(wrong=1).failed and _row(duplicated=1).failed
    assert Row(
        scenario="s",
        objects=1,
        results=1,
        lost=0,
        wrong=0,
        duplicated=0,
        writes=1,
        recovered_s=0.0,
        problems=("hot loop",),
    ).failed


def test_the_table_is_markdown_with_one_line_per_row() -> None:
    text = render([_row(), _row(lost=2)])
    lines = text.splitlines()
    assert lines[0].startswith("| scenario |") and lines[1].startswith("| --- |")
    assert len(lines) == 4 and lines[3].split(" | ")[3] == "2"


def test_the_corpus_has_150_inputs_each_named_once() -> None:
    items, probes = corpus("p")
    assert len(items) + len(probes) >= 150
    assert len({(i.bucket, i.key) for i in items}) == len(items)
    assert len({p.token for p in probes}) == len(probes)
    assert all(len(i.key.encode()) <= 1024 for i in items)


def test_the_corpus_names_every_trigger_of_the_issue() -> None:
    items, probes = corpus("p")
    bodies = [i.body for i in items]
    keys = [i.key for i in items]
    assert b"" in bodies  # empty files
    assert any(b.startswith(b"\xef\xbb\xbf") for b in bodies)  # BOMs
    assert any(b"\x00" in b for b in bodies)  # NUL bytes
    assert any(b'"a":1,"a":2' in b for b in bodies)  # duplicate keys
    assert any(b.startswith(b"[" * 100_000) for b in bodies)  # deep JSON
    assert any(len(b) > 16 * 1024 * 1024 and b.count(b"\n") <= 2 for b in bodies)  # huge lines
    assert {825, 900, 1000, 1024} <= {len(k.encode()) for k in keys}  # long keys
    assert any("%" in k for k in keys) and any(" " in k for k in keys)
    assert any(not k.isascii() for k in keys)
    whats = " ".join(p.what for p in probes)
    for trigger in ("userMetadata a list", "binary", "JSON array", "huge", "function queue"):
        assert trigger in whats


def test_the_bomb_expands_to_2_gib_in_a_few_megabytes() -> None:
    data = bomb()
    assert len(data) < 4 * 1024 * 1024
    member = len(data) // BOMB_MEMBERS
    # Each gzip member ends with ISIZE, its uncompressed length (RFC 1952).
    sizes = [
        struct.unpack("<I", data[(i + 1) * member - 4 : (i + 1) * member])[0]
        for i in range(BOMB_MEMBERS)
    ]
    assert sum(sizes) == BOMB_MEMBER * BOMB_MEMBERS == 2 * 1024**3


def test_a_long_key_has_exactly_its_length_in_segments_minio_takes() -> None:
    key = long_key("uploads/x/", 1024)
    assert len(key.encode()) == 1024
    assert max(len(s.encode()) for s in key.split("/")) <= 255


class _Flaky:
    """An S3 client whose store answers 503 ``fails`` times, then takes the object."""

    def __init__(self, fails: int, code: str = "ServiceUnavailable") -> None:
        self.fails = fails
        self.code = code
        self.tries = 0

    def put_object(self, **_: object) -> dict[str, str]:
        self.tries += 1
        if self.tries <= self.fails:
            raise ClientError({"Error": {"Code": self.code, "Message": "x"}}, "PutObject")
        return {"ETag": '"e"'}


def _item() -> Item:
    return Item(bucket="b", key="k", body=b"x", function="f", expect=rows(1))


def test_an_upload_stored_on_a_later_try_is_an_input_not_a_refusal() -> None:
    # Before: the first try's failure stayed noted after the second try stored the
    # object, so it was left out of the judged inputs and counted lost.
    item, s3 = _item(), _Flaky(fails=1)
    put(s3, item, patience=5)  # type: ignore[arg-type]
    assert (item.etag, item.refused, s3.tries) == ('"e"', None, 2)


def test_a_key_the_store_refuses_is_not_retried_and_an_outage_is_given_up_on() -> None:
    item, s3 = _item(), _Flaky(fails=9, code="KeyTooLongError")
    put(s3, item, patience=5)  # type: ignore[arg-type]
    assert s3.tries == 1 and item.refused is not None and item.etag is None
    item, s3 = _item(), _Flaky(fails=10**6)
    put(s3, item, patience=0)  # type: ignore[arg-type]
    assert s3.tries == 1 and item.refused == "store unavailable: ServiceUnavailable"
