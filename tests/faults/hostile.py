"""The hostile-inputs scenario: the corpus against the running stack, and what it came to.

Objects are uploaded; messages are published straight to the ingress queue (or a
function's queue) with publisher confirms. Then every object must have its
correct result or a dead-lettered record naming its reason and exactly one dead
letter; every message its dead letter naming its reason (found by the token in
its body) or, for a well-formed event whose object is missing, a ``superseded``
line in the runtime's log. Three more checks make "the runtime keeps running"
precise: the same process (pid) still answers ``/healthz``; every work queue
drains to zero (a hot loop never does); and the log shows no input delivered
more often than its retry policy allows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import aio_pika
import orjson

from functions import app
from runtime.core.letters import IngressDeadLetter, Undecodable
from tests.faults.corpus import corpus
from tests.faults.effects import extra_letters, letter_source, letters, writes
from tests.faults.load import OUTPUT, settle, upload
from tests.faults.messages import Probe
from tests.faults.table import Row

if TYPE_CHECKING:
    from runtime.ops.deadletters import Entry
    from tests.faults.stack import Stack

OUTCOMES = {"invocation", "invocation failed, will retry", "invocation dead-lettered"}


async def _publish(stack: Stack, probes: list[Probe]) -> None:
    queues = stack.settings.queues
    connection = await aio_pika.connect(stack.settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for probe in probes:
            name = queues.ingress if probe.queue == "ingress" else queues.function(probe.queue)
            await channel.default_exchange.publish(
                aio_pika.Message(probe.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=name,
                mandatory=True,
            )


def _raw_body(entry: Entry) -> bytes:
    letter = entry.letter
    return letter.body if isinstance(letter, IngressDeadLetter | Undecodable) else b""


def _log(stack: Stack, offset: int) -> list[dict[str, Any]]:
    with stack.runtime_log.open("rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    out = []
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line cut by a SIGKILL, or a traceback
        if isinstance(doc, dict):
            out.append(doc)
    return out


def _letter_of(probe: Probe, entry: Entry) -> bool:
    if probe.key:
        inv = entry.invocation
        return probe.reason != "" and inv is not None and inv.event.key == probe.key
    return probe.token.encode() in _raw_body(entry)


def _resolve(
    stack: Stack, probes: list[Probe], offset: int, tag: str, timeout: float
) -> tuple[dict[str, Entry], set[str], list[Entry]]:
    """Wait until each probe has its letter (or its ``superseded`` line); what was found."""
    deadline = time.monotonic() + timeout
    while True:
        entries = letters(stack.settings, app)
        found: dict[str, Entry] = {}
        for entry in entries:
            for probe in probes:
                if _letter_of(probe, entry):
                    found.setdefault(probe.token, entry)
        superseded = {
            doc.get("key", "")
            for doc in _log(stack, offset)
            if doc.get("event") == "invocation" and doc.get("status") == "superseded"
        }
        dropped = {p.token for p in probes if p.key and not p.reason and p.key in superseded}
        if len(found) + len(dropped) == len(probes) or time.monotonic() > deadline:
            mine = [e for e in entries if tag in letter_source(e) or tag.encode() in _raw_body(e)]
            return found, dropped, mine
        time.sleep(5)  # each look reads every dead letter, the 100 MiB one too


def _extra_probe_letters(entries: list[Entry], probes: list[Probe]) -> int:
    """Letters beyond the first for one message, told apart by the token in its body."""
    counts = Counter(p.token for e in entries for p in probes if p.token.encode() in _raw_body(e))
    return sum(n - 1 for n in counts.values())


def hostile(stack: Stack, *, rate: float, timeout: float) -> Row:
    """Run the corpus; one row for the table."""
    tag = f"faults-hostile-{uuid.uuid4().hex[:8]}"
    items, probes = corpus(tag)
    pid = stack.runtime_pid()
    offset = stack.runtime_log.stat().st_size
    start = time.time()
    upload(stack.s3, items, rate)
    asyncio.run(_publish(stack, probes))
    sent = time.time()
    # One budget for objects and messages alike: the row waits `timeout` at most.
    deadline = time.monotonic() + timeout
    verdicts = settle(stack.s3, items, timeout)
    left_s = max(5.0, deadline - time.monotonic())
    found, dropped, mine = _resolve(stack, probes, offset, tag, left_s)
    problems: list[str] = []
    # Each item that must be dead-lettered has exactly one letter; none has another.
    per_source = Counter(letter_source(e) for e in mine)
    for v in verdicts:
        want = v.item.expect
        n = per_source.get(f"{v.item.function}:{v.item.bucket}/{v.item.key}", 0)
        if not want.ok and v.correct and n == 0:
            problems.append(f"{v.item.key}: dead-lettered record but no dead letter")
    probe_wrong = 0
    for probe in probes:
        entry = found.get(probe.token)
        said = f"{entry.reason} {entry.error}" if entry is not None else ""
        if entry is not None and probe.reason.lower() not in said.lower():
            probe_wrong += 1
            problems.append(f"message {probe.what!r}: reason {entry.reason!r}")
    # No hot loop: work queues drain, and no input was delivered beyond its policy.
    left = {q: n for q, n in stack.drained(timeout=30).items() if n}
    if left:
        problems.append(f"work queues did not drain: {left}")
    log = _log(stack, offset)
    deliveries = Counter(
        (d.get("function"), d.get("key")) for d in log if d.get("event") in OUTCOMES
    )
    limits = {r.name: r.retry.max_attempts for r in app.routes}
    mine_keys = {(i.function, i.key) for i in items} | {
        ("csv_row_count", p.key) for p in probes if p.key
    }
    over = {k: n for k, n in deliveries.items() if k in mine_keys and n > limits.get(str(k[0]), 5)}
    if over:
        problems.append(f"delivered beyond the retry policy: {list(over.items())[:3]}")
    rejected = Counter(
        d.get("dead_letter_id")
        for d in log
        if "dead-lettered" in str(d.get("event")) and d.get("function") is None
    )
    twice = [i for i, n in rejected.items() if n > 1]
    if twice:
        problems.append(f"ingress messages dead-lettered more than once: {twice[:3]}")
    lost_sessions = sum(d.get("event") == "connection to RabbitMQ lost; reconnecting" for d in log)
    if lost_sessions:
        # One bad message must never cost every in-flight invocation its delivery.
        problems.append(f"the runtime lost its broker session {lost_sessions} times")
    if stack.runtime_pid() != pid or not stack.alive():
        problems.append(f"the runtime did not survive: pid {pid} → {stack.runtime_pid()}")
    effects = sum(
        (
            writes(stack.s3, OUTPUT, f"{fn}/{root}/{tag}/")
            for fn, root in (
                ("csv_row_count", "uploads"),
                ("json_canonicalize", "uploads"),
                ("to_staging", "orders"),
                ("to_curated", "orders"),
            )
        ),
        writes(stack.s3, "staging", f"orders/{tag}/"),
    ) + writes(stack.s3, "curated", f"orders/_partials/{tag}/")
    refused = [i for i in items if i.refused]
    landed = [v.landed for v in verdicts if v.landed is not None]
    letter_times = [e.at.timestamp() for e in found.values() if e.at is not None]
    last = max([*landed, *letter_times], default=sent)
    wrong_items = [v for v in verdicts if v.landed is not None and not v.correct]
    problems[:0] = [f"{v.item.key!r}: {v.detail}" for v in wrong_items[:10]]
    ok = sum(v.correct and v.item.expect.ok for v in verdicts)
    n_letters = sum(v.correct and not v.item.expect.ok for v in verdicts) + len(found) - probe_wrong
    most = max((deliveries[k] for k in mine_keys), default=0)
    notes = [
        f"{len(verdicts)} objects + {len(probes)} messages",
        f"{ok} results, {n_letters} dead letters (reason checked), {len(dropped)} dropped events",
        f"at most {most} deliveries per input",
        f"upload {sent - start:.0f} s",
    ]
    if effects.redone or effects.rewrites:
        notes.append(f"{effects.redone} runs redone, {effects.rewrites} identical rewrites")
    if refused:
        notes.append(f"{len(refused)} keys refused by MinIO at upload")
    resolved = len(landed) + len(found) + len(dropped)
    total = len(verdicts) + len(probes)
    return Row(
        scenario="hostile inputs: objects and ingress messages",
        objects=total,
        results=resolved,
        lost=total - resolved,
        wrong=len(wrong_items) + probe_wrong,
        duplicated=effects.duplicated
        + extra_letters([e for e in mine if e.invocation is not None])
        + _extra_probe_letters(mine, probes),
        writes=effects.versions + len(mine),
        recovered_s=max(0.0, last - sent),
        notes="; ".join(notes),
        problems=tuple(problems),
    )
