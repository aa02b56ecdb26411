"""Stale writes on the real stack: two revisions of one key in flight, the newest wins.

``racer`` runs on the versioned ``raw`` bucket, so each invocation reads its own
version and never notices a newer one; the test decides which revision is slow
and which fails. Whatever the order, ``result.json`` ends with the newest
revision's record, and an old revision's failure that finishes last leaves no
dead letter to replay.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson

from runtime.core.names import result_key
from tests.e2e import apps
from tests.e2e.conftest import Seen, Stack, running
from tests.e2e.test_failures import dead_letters
from tests.servers import unique

ROUNDS = 20


async def _put(stack: Stack, key: str, body: bytes) -> str:
    resp = await asyncio.to_thread(stack.s3.put_object, Bucket="raw", Key=key, Body=body)
    return str(resp["VersionId"])


def _record(stack: Stack, key: str) -> dict[str, Any]:
    obj = stack.s3.get_object(Bucket="job-outputs", Key=result_key("racer", key))
    doc: dict[str, Any] = orjson.loads(obj["Body"].read())
    return doc


async def test_an_older_and_a_newer_event_in_flight_together_end_with_the_newest(
    stack: Stack,
) -> None:
    # Two runtimes compete for the queue, as two processes would. Within one, the
    # invocations of a key take turns (runtime/engine/turns.py), so only across
    # runtimes can they overlap: there the result ledger alone keeps the newest.
    async with running(stack.app, stack.settings) as other:
        base = f"e2e-race/{unique()}"
        overlapped = 0
        newest_of: dict[str, str] = {}
        for n in range(ROUNDS):
            key = f"{base}/r{n}.race"
            # Even rounds: the old revision is slow and finishes last (the stale write);
            # odd rounds: the new one is slow. Every third old one fails, every fifth new one.
            old_wait, new_wait = (1.2, 0.05) if n % 2 == 0 else (0.05, 1.2)
            old_verdict = "bad" if n % 3 == 0 else "ok"
            new_verdict = "bad" if n % 5 == 0 else "ok"
            await _put(stack, key, f"{old_verdict}:{old_wait}".encode())
            newest = await _put(stack, key, f"{new_verdict}:{new_wait}".encode())
            newest_of[key] = newest
            # Both events consumed: each invocation reports how it ended (no fixed sleep).
            await stack.seen.until(functools.partial(_ended, (stack.seen, other), key), timeout=60)
            rec = _record(stack, key)
            assert rec["source"]["version_id"] == newest, f"round {n}: {rec['source']}"
            assert rec["status"] == ("ok" if new_verdict == "ok" else "dead-lettered"), f"round {n}"
            overlapped += key in apps.OVERLAPPED
    # The rounds really raced: most ran both invocations at once (an old event that
    # arrives after the newer result is refused before its handler, and that is fine).
    assert overlapped >= ROUNDS // 2, f"only {overlapped} of {ROUNDS} rounds overlapped"
    # Dead letters only for a newest revision that failed: an old one that failed and
    # finished last (rounds 0, 6, 12, 18) left none.
    entries = await dead_letters(stack.settings, stack.app, "racer", n=ROUNDS // 5)
    mine = [e for e in entries if e.key in newest_of]
    assert sorted(e.key or "" for e in mine) == sorted(
        f"{base}/r{n}.race" for n in range(ROUNDS) if n % 5 == 0
    )
    assert all(
        e.record["invocation"]["event"]["version_id"] == newest_of.get(e.key or "") for e in mine
    )


def _ended(seen: tuple[Seen, ...], key: str, /) -> bool:
    ended = [(f, k) for s in seen for f, k, _ in s.outcomes]
    return ended.count(("racer", key)) >= 2
