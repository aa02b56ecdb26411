"""Side effects, counted from what the store and the broker kept, not from final records.

A scenario's outputs live in versioned buckets while it runs (see
:func:`tests.faults.stack.versioned`), so every PUT of a record, a file written
beside it, or a promotion is one version. Each source object is written once
per scenario, so each output key should have exactly one version:

- an extra version with *other bytes* is a **duplicated side effect**: the work
  ran again and wrote again (a result record always differs between two runs:
  event id, timings, attempts);
- an extra version with the *same bytes* (same ETag) is a **rewrite**: an HTTP
  retry of one PUT whose first try had landed. It changes nothing a reader can
  see, so it is reported but is not a duplicate.

The runtime's own bookkeeping is told apart: a promotion is first written to a
*history entry* of its revision (``…/_history/…``, write-once per revision) and
then settled onto its target. A run cut by SIGKILL after its history PUT but
before its ack is redelivered and runs again (at-least-once delivery cannot know
the first run finished); it rewrites its own history entry and settles the same
target, which already holds that revision. Such a rewrite is **redone** work,
reported, but not a duplicated side effect: no output a reader sees gets a second
version. (A result record has no history: it is written in place, conditionally,
and a redelivered run that finds its revision's success there writes nothing.)

Dead letters are counted per source (or per raw message body): a second letter
for the same input is a duplicated side effect too.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.adapters.amqp import Broker
from runtime.ops.deadletters import DeadLetters, Entry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runtime.app.router import App
    from runtime.core.settings import Settings


HISTORY = "/_history/"  # the promotions' per-revision entries (runtime.app.ledger)


@dataclass(frozen=True, slots=True, kw_only=True)
class Writes:
    """Versions written under some prefixes."""

    keys: int = 0
    versions: int = 0
    duplicated: int = 0
    rewrites: int = 0
    redone: int = 0
    duplicated_keys: tuple[str, ...] = ()

    def __add__(self, other: Writes) -> Writes:
        return Writes(
            keys=self.keys + other.keys,
            versions=self.versions + other.versions,
            duplicated=self.duplicated + other.duplicated,
            rewrites=self.rewrites + other.rewrites,
            redone=self.redone + other.redone,
            duplicated_keys=self.duplicated_keys + other.duplicated_keys,
        )


def writes(
    s3: S3Client, bucket: str, prefix: str, *, shared: frozenset[str] = frozenset()
) -> Writes:
    """Count the versions under ``bucket/prefix`` (see :func:`tally`)."""
    etags: dict[str, list[str]] = defaultdict(list)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            etags[version["Key"]].append(version["ETag"])
    return tally(etags, shared=shared)


def tally(etags: Mapping[str, list[str]], *, shared: frozenset[str] = frozenset()) -> Writes:
    """Classify each key's versions (their ETags): duplicated, rewritten, or redone.

    A ``shared`` key (an aggregate every input rewrites by design, as the lake's
    curated total) is counted in ``versions`` but never as a duplicate.
    """
    duplicated = rewrites = redone = 0
    dup_keys: list[str] = []
    for key, tags in etags.items():
        if key in shared:
            continue
        distinct = len(set(tags))
        rewrites += len(tags) - distinct
        if HISTORY in key:
            redone += distinct - 1
            continue
        duplicated += distinct - 1
        if distinct > 1:
            dup_keys.append(key)
    return Writes(
        keys=len(etags),
        versions=sum(map(len, etags.values())),
        duplicated=duplicated,
        rewrites=rewrites,
        redone=redone,
        duplicated_keys=tuple(dup_keys),
    )


async def _entries(settings: Settings, app: App) -> list[Entry]:
    async with Broker.connect(settings) as broker:
        return await DeadLetters(broker, settings, app).entries()


def letters(settings: Settings, app: App) -> list[Entry]:
    """Every dead-letter entry of the deployment (read and given back, as ``dlq ls`` does)."""
    return asyncio.run(_entries(settings, app))


def letter_source(entry: Entry) -> str:
    """What one letter is about: the function and source key, or the raw message's id."""
    inv = entry.invocation
    if inv is not None:
        return f"{inv.function}:{inv.event.bucket}/{inv.event.key}"
    return f"{entry.kind}:{entry.id}"


def extra_letters(entries: list[Entry]) -> int:
    """Letters beyond the first for one input: each is a duplicated side effect."""
    counts = Counter(letter_source(e) for e in entries)
    return sum(n - 1 for n in counts.values())
