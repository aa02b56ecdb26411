"""One dead-letter model: every kind a dead-letter queue can hold decodes through one door."""

from __future__ import annotations

from aio_pika.exceptions import ChannelNotFoundEntity

from runtime import BrokerError
from runtime.adapters.amqp import translate
from runtime.core.events import PUT, ObjectEvent
from runtime.core.letters import (
    DeadLetter,
    DeliveryLimit,
    IngressDeadLetter,
    Undecodable,
    decode,
)
from runtime.core.records import ErrorInfo, Invocation, dumps, fingerprint

EVENT = ObjectEvent(event_id="e1", event_name=PUT, bucket="b", key="k", etag="t")
INV = Invocation(function="f", event=EVENT)


def test_a_workers_dead_letter_round_trips() -> None:
    error = ErrorInfo.of(ValueError("boom"))
    letter = DeadLetter(
        id="x", function="f", function_version="v", reason="r", invocation=INV, error=error
    )
    back = decode(dumps(letter), {}, function="f")
    assert isinstance(back, DeadLetter)
    assert back.fingerprint == error.fingerprint and len(back.fingerprint) == 12


def test_the_brokers_own_dead_letter_is_recognised_by_its_death_header() -> None:
    back = decode(
        dumps(INV), {"x-first-death-reason": b"delivery_limit"}, function="f", message_id="m1"
    )
    assert isinstance(back, DeliveryLimit)
    assert back.id == "m1" and back.invocation.event.key == "k"
    assert "delivery_limit" in back.reason
    assert back.fingerprint == fingerprint("f", "delivery_limit")


def test_garbage_keeps_its_bytes_and_its_queue() -> None:
    raw = b"\xff\xfe not json"
    on_ingress = decode(raw, None, function=None, message_id="keep")
    assert isinstance(on_ingress, IngressDeadLetter)
    assert on_ingress.id == "keep" and on_ingress.body == raw
    on_function = decode(b'{"some": "json"}', None, function="f")
    assert isinstance(on_function, Undecodable)
    assert on_function.function == "f" and on_function.body == b'{"some": "json"}'


def test_ingress_letters_group_by_the_first_clause_of_their_reason() -> None:
    a = IngressDeadLetter.of("malformed record: missing field 's3'", b"1")
    b = IngressDeadLetter.of("malformed record: missing field 'key'", b"2")
    c = IngressDeadLetter.of("not JSON: unexpected character", b"3")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.id != b.id


def test_amqp_errors_are_mapped_in_one_place() -> None:
    assert isinstance(translate(ConnectionResetError("reset"), "publish"), BrokerError)
    gone = translate(ChannelNotFoundEntity("NOT_FOUND"), "queue 'q'")
    assert "bucketfn init" in str(gone)
    same = BrokerError("already ours")
    assert translate(same, "x") is same


def test_since_keeps_entries_whose_time_is_unknown() -> None:
    # Before: a delivery-limit entry without a broker timestamp vanished from `ls --since`.
    from datetime import timedelta

    from runtime.core.records import now
    from runtime.ops.deadletters import Entry, select

    unknown = Entry(
        queue="q", letter=DeliveryLimit(id="u", death="delivery_limit", invocation=INV), record={}
    )
    error = ErrorInfo.of(ValueError("old"))
    old = Entry(
        queue="q",
        letter=DeadLetter(
            id="o",
            function="f",
            function_version="v",
            reason="r",
            invocation=INV,
            error=error,
            dead_lettered_at=now() - timedelta(hours=1),
        ),
        record={},
    )
    recent = select(since=timedelta(minutes=5))
    assert recent(unknown) and not recent(old)


async def test_done_since_names_the_letters_whose_revision_succeeded_by_now() -> None:
    from runtime.core.names import job_result_key, result_key
    from runtime.engine.seen import Seen
    from runtime.ops.deadletters import Entry, done_since
    from runtime.testing import MemoryStorage

    def limit(ident: str, inv: Invocation) -> Entry:
        letter = DeliveryLimit(id=ident, death="delivery_limit", invocation=inv)
        return Entry(queue="q", letter=letter, record={})

    def ok(revision: str, status: str = "ok") -> dict[str, str]:
        return Seen.stamp(function="f", status=status, revision=revision, sequencer=None)

    storage = MemoryStorage()
    job = Invocation(function="f", event=EVENT.model_copy(update={"key": "j"}), job_id="a" * 32)
    other = Invocation(function="f", event=EVENT.model_copy(update={"key": "k2"}))
    failed = Invocation(function="f", event=EVENT.model_copy(update={"key": "k3"}))
    storage.put_bytes("out", result_key("f", "k"), b"{}", ok("t"))
    storage.put_bytes("out", job_result_key("a" * 32), b"{}", ok("t"))
    storage.put_bytes("out", result_key("f", "k2"), b"{}", ok("a newer revision"))
    storage.put_bytes("out", result_key("f", "k3"), b"{}", ok("t", "dead-lettered"))
    entries = [
        limit("done", INV),
        limit("job", job),
        limit("moved-on", other),
        limit("failed", failed),
        Entry(queue="q", letter=Undecodable.of("f", "not an invocation", b"x"), record={}),
    ]
    assert await done_since(storage, "out", entries) == {"done", "job"}
