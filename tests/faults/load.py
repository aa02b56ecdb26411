"""Objects with known outcomes: upload them at a steady rate, then judge every record.

An :class:`Item` is one object and what must become of it — a result whose
output passes a check, or a dead letter whose error names a reason. Records are
found by listing (one request per 1,000 keys, not a GET per key per poll), and
each is judged once every expected record exists or the time is up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from runtime.core.names import output_prefix, result_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OUTPUT = "job-outputs"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What must become of an object: ``ok`` with ``check(output)``, or a dead letter."""

    what: str
    ok: bool = True
    check: Callable[[Any], bool] = field(default=lambda _: True, compare=False)
    reason: str = ""

    @classmethod
    def result(cls, what: str, check: Callable[[Any], bool]) -> Expect:
        """A result record with status ok whose output passes ``check``."""
        return cls(what=what, check=check)

    @classmethod
    def letter(cls, what: str, reason: str) -> Expect:
        """A dead letter (and dead-lettered record) whose error contains ``reason``."""
        return cls(what=what, ok=False, reason=reason)


def rows(n: int) -> Expect:
    """``csv_row_count`` counted ``n`` records."""
    return Expect.result(f"{n} rows", lambda out: out["rows"] == n)


@dataclass(slots=True, kw_only=True)
class Item:
    """One object to upload, the function whose record it must get, and what it must say."""

    bucket: str
    key: str
    body: bytes
    function: str
    expect: Expect
    listing: str = ""  # a plain source-key prefix its record is listed under
    upload: bool = True  # False: the runtime writes it (a promotion's own trigger)
    etag: str | None = None  # set once uploaded
    refused: str | None = None  # the store would not take it (never an input, then)

    def __post_init__(self) -> None:
        if not self.listing:
            self.listing = "/".join(self.key.split("/")[:2])

    @property
    def record(self) -> str:
        """Where its result record lands."""
        return result_key(self.function, self.key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What became of one item."""

    item: Item
    landed: float | None  # epoch seconds its record was last written; None: lost
    correct: bool
    detail: str


REFUSALS = frozenset(
    {"XMinioInvalidObjectName", "XMinioInvalidResourceName", "KeyTooLongError", "InvalidArgument"}
)
"""What the store answers about a key it will never take (not a passing outage)."""


def put(s3: S3Client, item: Item, *, patience: float = 300.0) -> None:
    """Upload ``item``, retrying while the store refuses for a moment (a fault is on).

    Anything but a refusal of the key itself is retried, for up to ``patience``
    seconds, as a client that means to store its file would: a restarting MinIO
    answers 403 until it has loaded its users and 503 until its drives are up.
    A success clears the failure an earlier try noted: before, it did not, so
    an upload stored on its second try was still counted as refused — left out
    of the judged inputs and counted lost (the MinIO row's "8 lost").
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            item.etag = s3.put_object(Bucket=item.bucket, Key=item.key, Body=item.body)["ETag"]
            item.refused = None
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in REFUSALS:
                item.refused = f"{code}: {exc}"
                return
            item.refused = f"store unavailable: {code}"
        except BotoCoreError as exc:  # connection refused while the store restarts
            item.refused = f"store unavailable: {exc}"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.5)


def upload(
    s3: S3Client, items: list[Item], rate: float, at: dict[int, Callable[[], None]] | None = None
) -> None:
    """PUT ``items`` at ``rate`` per second; call ``at[i]`` (in a thread) before item ``i``."""
    hooks = at or {}
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for i, item in enumerate(x for x in items if x.upload):
            if i in hooks:
                threading.Thread(target=hooks[i], daemon=True).start()
            pool.submit(put, s3, item)
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))


def _listed(s3: S3Client, prefixes: Iterable[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUTPUT, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj["LastModified"].timestamp()
    return found


def settle(s3: S3Client, items: list[Item], timeout: float) -> list[Verdict]:
    """Wait for every uploaded item's record, then judge each.

    Records are listed under ``<function>/<item.listing>``, a few requests per
    poll however many items there are.
    """
    inputs = [i for i in items if i.refused is None]
    prefixes = {output_prefix(i.function, i.listing).removesuffix("/") for i in inputs}
    wanted = {i.record for i in inputs}
    deadline = time.monotonic() + timeout
    found = _listed(s3, prefixes)
    while not wanted <= found.keys() and time.monotonic() < deadline:
        time.sleep(1)
        found = _listed(s3, prefixes)
    return [judge(s3, i, found.get(i.record)) for i in inputs]


def judge(s3: S3Client, item: Item, landed: float | None) -> Verdict:
    """Read ``item``'s record and say whether it is what was expected."""
    if landed is None:
        return Verdict(item=item, landed=None, correct=False, detail="no record")
    doc = orjson.loads(s3.get_object(Bucket=OUTPUT, Key=item.record)["Body"].read())
    source = doc.get("source") or {}
    if source.get("key") != item.key:
        return Verdict(item=item, landed=landed, correct=False, detail="another key's record")
    if item.etag is not None and source.get("etag") not in (item.etag.strip('"'), None):
        return Verdict(item=item, landed=landed, correct=False, detail="another revision")
    want = item.expect
    if want.ok:
        good = doc.get("status") == "ok" and _passes(want.check, doc.get("output"))
        detail = "" if good else f"status {doc.get('status')}: {_said(doc)}"
        return Verdict(item=item, landed=landed, correct=good, detail=detail)
    said = _said(doc)
    good = doc.get("status") == "dead-lettered" and want.reason in said
    return Verdict(item=item, landed=landed, correct=good, detail="" if good else said)


def _passes(check: Callable[[Any], bool], output: Any) -> bool:
    try:
        return bool(check(output))
    except (KeyError, TypeError, IndexError):
        return False


def _said(doc: dict[str, Any]) -> str:
    error = doc.get("error") or {}
    if error:
        return f"{error.get('type')}: {error.get('message')}"
    return orjson.dumps(doc.get("output")).decode()[:200]
