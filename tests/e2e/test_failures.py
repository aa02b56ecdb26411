"""When things fail, on the real stack: retries, dead letters, replay, crashes."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from runtime import ObjectEvent
from runtime.adapters.amqp import Broker
from runtime.adapters.topology import queue_arguments
from runtime.core.names import result_key
from runtime.core.records import dumps
from runtime.core.settings import Settings
from runtime.ops.deadletters import DeadLetters, Entry, select
from runtime.ops.provision import init
from tests.e2e import apps
from tests.e2e.conftest import Stack
from tests.servers import (
    delete_queues,
    deployment_env,
    make_settings,
    remove_rules,
    unique,
    wait_for_object,
)
from tests.unit.test_events import minio

ROOT = Path(__file__).resolve().parents[2]


async def put(stack: Stack, key: str, body: bytes) -> None:
    await asyncio.to_thread(stack.s3.put_object, Bucket="job-inputs", Key=key, Body=body)


async def dead_letters(
    settings: Settings, app: object, function: str | None, n: int = 1, timeout: float = 30
) -> list[Entry]:
    """Wait until ``n`` entries for ``function`` are dead-lettered; return them."""
    deadline = time.monotonic() + timeout
    async with Broker.connect(settings) as broker:
        store = DeadLetters(broker, settings, app)  # type: ignore[arg-type]
        while True:
            entries = [e for e in await store.entries() if e.function == function]
            if len(entries) >= n or time.monotonic() > deadline:
                return entries
            await asyncio.sleep(0.3)


async def test_fails_twice_then_succeeds_with_backoff(stack: Stack) -> None:
    key = f"e2e-flaky/{unique()}/data.bin"
    await put(stack, key, b"payload")
    result = await wait_for_object(stack.s3, "job-outputs", result_key("flaky", key), timeout=60)
    assert result["status"] == "ok"
    assert result["output"] == {"size": 7}
    assert result["attempts"] == 3
    history = result["history"]
    assert [a["attempt"] for a in history] == [1, 2]
    assert all(a["error_type"] == "ConnectionError" for a in history)
    # Delays were really waited: attempt 2 started after attempt 1's delay.
    delays = [a["delay_ms"] for a in history]
    assert all(d is not None and d > 0 for d in delays)
    first = history[0]["at"]
    elapsed_ms = (_ts(result["started_at"]) - _ts(first)) * 1000
    assert elapsed_ms >= sum(delays) * 0.9


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


async def test_permanent_failure_dead_letters_at_once_with_its_story(stack: Stack) -> None:
    key = f"e2e-strict/{unique()}/data.txt"
    await put(stack, key, b"all good until bad bytes")
    result = await wait_for_object(stack.s3, "job-outputs", result_key("strict", key))
    assert result["status"] == "dead-lettered"
    assert result["attempts"] == 1  # no retries burnt on malformed input
    entries = [e for e in await dead_letters(stack.settings, stack.app, "strict") if e.key == key]
    assert len(entries) == 1
    entry = entries[0]
    assert entry.kind == "dead-letter"
    assert entry.reason == "permanent error"
    assert entry.error_type == "runtime.InputError"
    assert "byte 15" in (entry.error or "")
    record = entry.record
    assert "Traceback" in record["error"]["traceback"]
    assert len(record["error"]["fingerprint"]) == 12
    assert record["function_version"] == stack.app.by_name["strict"].version
    assert record["invocation"]["event"]["etag"]
    # Same bug, another object: same fingerprint.
    key2 = f"e2e-strict/{unique()}/other.txt"
    await put(stack, key2, b"bad from the start")
    await wait_for_object(stack.s3, "job-outputs", result_key("strict", key2))
    both = [
        e
        for e in await dead_letters(stack.settings, stack.app, "strict", 2)
        if e.key in (key, key2)
    ]
    assert len({e.fingerprint for e in both}) == 1


async def test_replay_after_the_fix_and_replaying_again_changes_nothing(stack: Stack) -> None:
    key = f"e2e-fixable/{unique()}/data.bin"
    await put(stack, key, b"12345")
    result = await wait_for_object(stack.s3, "job-outputs", result_key("fixable", key), timeout=60)
    assert result["status"] == "dead-lettered"
    assert result["attempts"] == 2
    (entry,) = [e for e in await dead_letters(stack.settings, stack.app, "fixable") if e.key == key]
    assert "exhausted" in entry.reason

    apps.FIXED["fixable"] = True
    try:
        async with Broker.connect(stack.settings) as broker:
            store = DeadLetters(broker, stack.settings, stack.app)
            dry = await store.replay(select([entry.id]), dry_run=True)
            assert dry.replayed == [entry.id]
            assert [e.id for e in await store.entries(select([entry.id]))] == [entry.id]
            report = await store.replay(select([entry.id]))
            assert report.replayed == [entry.id]
            deadline = time.monotonic() + 30
            while True:
                doc = orjson.loads(
                    stack.s3.get_object(Bucket="job-outputs", Key=result_key("fixable", key))[
                        "Body"
                    ].read()
                )
                if doc["status"] == "ok" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert doc["status"] == "ok"
            assert doc["output"] == {"size": 5}
            assert doc["attempts"] == 3  # two failed attempts kept, then the replayed one
            assert await store.entries(select([entry.id])) == []
            etag = stack.s3.head_object(Bucket="job-outputs", Key=result_key("fixable", key))[
                "ETag"
            ]
            again = await store.replay(select([entry.id]))
            assert again.replayed == []
            # Replaying twice is harmless: deliver the replayed invocation once more
            # (what a second replay, or a redelivery, does) and see it skipped.
            assert entry.invocation is not None
            twice = entry.invocation.model_copy(update={"attempt": 1, "replays": 2})
            await broker.publish(stack.settings.queues.function("fixable"), dumps(twice))
            await stack.seen.until(lambda: ("fixable", key, "duplicate") in stack.seen.outcomes)
        # The duplicate was skipped: the record is untouched.
        assert (
            stack.s3.head_object(Bucket="job-outputs", Key=result_key("fixable", key))["ETag"]
            == etag
        )
    finally:
        apps.FIXED["fixable"] = False


async def test_garbage_on_the_ingress_is_dead_lettered_and_the_runtime_goes_on(
    stack: Stack,
) -> None:
    async with Broker.connect(stack.settings) as broker:
        await broker.publish(stack.settings.queues.ingress, b"\x00 definitely not an event")
        await broker.publish(stack.settings.queues.ingress, b'{"Records": [{"nope": 1}]}')
    entries = await dead_letters(stack.settings, stack.app, None, n=2)
    reasons = sorted(e.reason for e in entries)
    assert any("not JSON" in r for r in reasons)
    assert any("missing field" in r for r in reasons)
    # Still running: a real upload is processed.
    key = f"uploads/{unique()}/after-garbage.csv"
    await put(stack, key, b"a\n1\n")
    result = await wait_for_object(stack.s3, "job-outputs", result_key("csv_row_count", key))
    assert result["output"]["rows"] == 1
    async with Broker.connect(stack.settings) as broker:
        store = DeadLetters(broker, stack.settings, stack.app)
        purged = await store.purge(select([e.id for e in entries]))
    assert sorted(purged) == sorted(e.id for e in entries)


async def test_stale_event_never_overwrites_the_newer_result(stack: Stack) -> None:
    key = f"uploads/{unique()}/versions.csv"
    await put(stack, key, b"h\n1\n")
    old_etag = stack.s3.head_object(Bucket="job-inputs", Key=key)["ETag"].strip('"')
    await put(stack, key, b"h\n1\n2\n3\n")
    rkey = result_key("csv_row_count", key)
    deadline = time.monotonic() + 30
    while True:
        doc = await wait_for_object(stack.s3, "job-outputs", rkey)
        if doc["output"]["rows"] == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert doc["output"]["rows"] == 3
    # The store's own event for the first write, as the runtime received it: its real
    # etag and sequencer (not a hard-coded one that may or may not sort older).
    await stack.seen.until(lambda: len(_events_of(stack, key)) >= 2)
    first = min(_events_of(stack, key), key=lambda e: int(e.sequencer or "0", 16))
    assert first.etag == old_etag and first.sequencer is not None
    # Redeliver it after the newer result exists: with its sequencer the record's
    # metadata says it is older; without one (as the sweep sends) the worker asks the
    # store what is current. Either way it must be consumed and found stale.
    for sequencer in (first.sequencer, None):
        stale = orjson.loads(minio(key.replace(" ", "+")))
        stale["Records"][0]["s3"]["object"]["eTag"] = first.etag
        stale["Records"][0]["s3"]["object"]["size"] = first.size
        if sequencer is None:
            del stale["Records"][0]["s3"]["object"]["sequencer"]
        else:
            stale["Records"][0]["s3"]["object"]["sequencer"] = sequencer
        refused = ("csv_row_count", key, "superseded")
        before = stack.seen.outcomes.count(refused)
        async with Broker.connect(stack.settings) as broker:
            await broker.publish(stack.settings.queues.ingress, orjson.dumps(stale))
        await stack.seen.until(functools.partial(_more, stack, refused, before))
        final = await wait_for_object(stack.s3, "job-outputs", rkey)
        assert final["output"]["rows"] == 3
        assert final["event_id"] == doc["event_id"]


def _more(stack: Stack, outcome: tuple[str, str, str], than: int) -> bool:
    return stack.seen.outcomes.count(outcome) > than


def _events_of(stack: Stack, key: str) -> list[ObjectEvent]:
    """The store's events for ``key`` the runtime dispatched (not the test's own)."""
    return [e for e in stack.seen.events if e.key == key and e.source == "minio"]


# --- a runtime in its own process, killed with SIGKILL -------------------------------


@pytest.fixture(scope="module")
async def crash_settings() -> AsyncIterator[Settings]:
    settings = make_settings().model_copy(update={"delivery_limit": 2})
    await init(apps.CRASH_APP, settings)
    yield settings
    await remove_rules(settings, {"job-inputs"})
    await delete_queues(settings, list(queue_arguments(settings, apps.CRASH_APP)))


class Process:
    """``bucketfn run tests.e2e.apps:CRASH_APP`` as a real child process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.env = {
            **deployment_env(settings),
            "BUCKETFN_DELIVERY_LIMIT": str(settings.delivery_limit),
            "E2E_SLOW_SECONDS": "3",
            # Any free port: a `make up` runtime may hold the default one.
            "BUCKETFN_METRICS_ADDRESS": "127.0.0.1:0",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runtime", "run", "tests.e2e.apps:CRASH_APP"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=out,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def process(crash_settings: Settings, tmp_path: Path) -> Iterator[Process]:
    p = Process(crash_settings, tmp_path / "runtime.log")
    yield p
    p.kill()


async def _objects(stack: Stack, prefix: str) -> int:
    listing = await asyncio.to_thread(stack.s3.list_objects_v2, Bucket="job-outputs", Prefix=prefix)
    return int(listing["KeyCount"])


async def _start_slow_invocation(stack: Stack, process: Process, key: str, body: bytes) -> str:
    """Start the child runtime, upload ``key``, return once ``slow`` is mid-invocation."""
    process.start()
    await put(stack, key, body)
    started = f"slow/{key}/started/"
    deadline = time.monotonic() + 30
    while await _objects(stack, started) < 1:
        assert time.monotonic() < deadline, process.log.read_text()[-2000:]
        await asyncio.sleep(0.1)
    return started


async def test_sigkill_mid_invocation_is_redelivered_and_ends_in_one_result(
    stack: Stack, process: Process, crash_settings: Settings
) -> None:
    key = f"e2e-slow/{unique()}/data.bin"
    started = await _start_slow_invocation(stack, process, key, b"abc")
    process.kill()  # SIGKILL, mid-invocation: no ack was sent
    assert await _objects(stack, f"slow/{key}/result.json") == 0
    process.start()
    result = await wait_for_object(stack.s3, "job-outputs", result_key("slow", key), timeout=60)
    assert result["status"] == "ok"
    assert result["output"] == {"size": 3}
    assert await _objects(stack, started) == 2  # it ran again after the kill…
    # …and ran to its end once. A graceful stop finishes whatever the child still
    # holds, so after the exit nothing of this key is in flight: a second copy would
    # have left a second marker, or wait in the queue for the next consumer.
    assert process.proc is not None
    process.proc.terminate()
    assert await asyncio.to_thread(process.proc.wait, 60) == 0
    assert await _objects(stack, f"slow/{key}/finished/") == 1
    async with Broker.connect(crash_settings) as broker, broker.channel() as channel:
        queue = await broker.existing(channel, crash_settings.queues.function("slow"))
        assert queue.declaration_result.message_count == 0


async def test_a_handler_that_kills_its_process_is_dead_lettered_by_the_broker(
    stack: Stack, process: Process, crash_settings: Settings
) -> None:
    key = f"e2e-crash/{unique()}/poison.bin"
    await put(stack, key, b"x")
    deadline = time.monotonic() + 90
    entries: list[Entry] = []
    while not entries:
        assert time.monotonic() < deadline, "the broker never dead-lettered the poison message"
        if not process.alive():
            process.start()  # a supervisor restarts the crashed runtime
        entries = [
            e
            for e in await dead_letters(crash_settings, apps.CRASH_APP, "crasher", timeout=1)
            if e.key == key
        ]
    (entry,) = entries
    assert entry.kind == "delivery-limit"
    assert "delivery_limit" in entry.reason
    assert entry.invocation is not None and entry.invocation.event.key == key


async def test_sigterm_finishes_in_flight_work_and_exits_zero(
    stack: Stack, process: Process
) -> None:
    key = f"e2e-slow/{unique()}/graceful.bin"
    started = await _start_slow_invocation(stack, process, key, b"abcd")
    assert process.proc is not None
    process.proc.terminate()  # SIGTERM mid-invocation
    code = await asyncio.to_thread(process.proc.wait, 60)
    assert code == 0
    # The in-flight invocation was allowed to finish before the exit.
    result = await wait_for_object(stack.s3, "job-outputs", result_key("slow", key), timeout=5)
    assert result["output"] == {"size": 4}
    assert await _objects(stack, started) == 1


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = deployment_env(settings)
    return subprocess.run(
        [sys.executable, "-m", "runtime", "dlq", *args, "--app", "tests.e2e.conftest:APP"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_dlq_cli_a_newcomer_uses(stack: Stack) -> None:
    key = f"e2e-strict/{unique()}/cli.txt"
    await put(stack, key, b"this is bad input")
    await wait_for_object(stack.s3, "job-outputs", result_key("strict", key))
    (entry,) = [e for e in await dead_letters(stack.settings, stack.app, "strict") if e.key == key]

    listed = _cli(stack.settings, "ls", "--json", "--function", "strict")
    assert listed.returncode == 0, listed.stderr
    assert entry.id in [e["id"] for e in orjson.loads(listed.stdout)]
    human = _cli(stack.settings, "ls", "--error", "malformed")
    assert "FINGERPRINT" in human.stdout and entry.fingerprint in human.stdout

    shown = _cli(stack.settings, "show", entry.id)
    assert shown.returncode == 0
    assert "Traceback" in shown.stdout and key in shown.stdout

    dry = _cli(stack.settings, "replay", "--id", entry.id, "--dry-run", "--json")
    assert orjson.loads(dry.stdout) == {"replayed": [entry.id], "skipped": {}, "dry_run": True}
    purged = _cli(stack.settings, "purge", "--id", entry.id, "--yes", "--json")
    assert orjson.loads(purged.stdout) == {"purged": [entry.id]}
    assert _cli(stack.settings, "show", entry.id).returncode == 1
