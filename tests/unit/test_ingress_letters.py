"""Ingress dead letters kept raw: the body as it came, the reason in headers."""

from __future__ import annotations

import re

from runtime.adapters.topology import bindings, exchanges, unrouted_policy
from runtime.core.letters import MAX_REASON, DeadLetter, IngressDeadLetter, decode, raw_headers
from runtime.core.names import Header
from runtime.core.records import dumps
from runtime.core.settings import Settings
from runtime.ops.access import publisher_permissions, runtime_permissions


def _raw(body: bytes, reason: str = "not JSON: unexpected character") -> IngressDeadLetter:
    headers = {Header.KIND: IngressDeadLetter.KIND, **raw_headers(reason)}
    letter = decode(body, headers, function=None, message_id="abc-1")
    assert isinstance(letter, IngressDeadLetter)
    return letter


def test_a_raw_letter_keeps_the_body_byte_for_byte() -> None:
    body = bytes(range(256)) * 3  # not UTF-8: the old wrapper would base64 it
    letter = _raw(body)
    assert letter.body == body
    assert letter.id == "abc-1"
    assert letter.reason.startswith("not JSON")
    assert letter.preview["size"] == len(body)


def test_the_reason_header_is_bounded() -> None:
    assert len(raw_headers("x" * 100_000)[Header.REASON]) == MAX_REASON


def test_a_raw_body_that_looks_like_a_letter_is_never_read_as_one() -> None:
    # Anyone may publish to the ingress; a body shaped like a function's dead
    # letter must stay an ingress letter, or replay would run it as an invocation.
    forged = b'{"kind": "dead-letter", "id": "x"}'
    assert _raw(forged).body == forged


def test_an_older_wrapped_letter_still_decodes() -> None:
    old = IngressDeadLetter.of("not JSON", b"\x00garbage")
    letter = decode(dumps(old), {Header.KIND: old.kind}, function=None)
    assert isinstance(letter, IngressDeadLetter)
    assert letter.body == b"\x00garbage"
    assert not isinstance(letter, DeadLetter)


def test_the_policy_gives_only_the_events_exchange_its_alternate() -> None:
    s = Settings(exchange="bucketfn.events")
    policy = unrouted_policy(s)
    assert policy.apply_to == "exchanges"
    assert policy.definition == {"alternate-exchange": "bucketfn.events.unrouted"}
    assert re.search(policy.pattern, "bucketfn.events")
    assert not re.search(policy.pattern, "bucketfn.events.unrouted")
    assert not re.search(policy.pattern, "bucketfnXevents")
    assert [e.type for e in exchanges(s)] == ["direct", "fanout"]
    assert ("bucketfn.unrouted", "bucketfn.events.unrouted") in {
        (b.queue, b.exchange) for b in bindings(s)
    }


def test_runtime_permissions_exclude_the_events_exchange_under_its_prefix() -> None:
    s = Settings(queue_prefix="bucketfn", exchange="bucketfn.events")
    perms = runtime_permissions(s)
    for name in ("bucketfn.events", "bucketfn.events.unrouted"):
        assert not re.search(perms.write, name)
        assert not re.search(perms.configure, name)
        assert re.search(perms.read, name)  # to bind its queues to them
    for name in ("bucketfn.ingress", "bucketfn.fn.x.dlq", "bucketfn.feed", "amq.gen-Ab1"):
        assert re.search(perms.configure, name)
    assert re.search(perms.write, "amq.default")
    for name in ("other.ingress", "bucketfnx.ingress", "amq.direct"):
        assert not re.search(perms.configure, name)
        assert not re.search(perms.read, name)
    mine = publisher_permissions(s)
    assert re.search(mine.write, "bucketfn.events")
    assert not re.search(mine.write, "bucketfn.events.unrouted")
    assert not re.search(mine.read, "bucketfn.ingress")
