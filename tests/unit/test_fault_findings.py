"""Runtime defects the hostile row of ``make faults`` exposed, pinned as tests.

Each failed before its fix (they were strict xfails until the fix landed).
"""

from __future__ import annotations

from typing import Any, cast

from botocore.exceptions import ClientError

from runtime import App
from runtime.adapters.s3 import translate
from runtime.core import retry
from runtime.core.names import Queues
from runtime.core.retry import RetryPolicy
from runtime.core.streams import MIB
from runtime.engine.dispatcher import Dispatcher
from runtime.testing.memory import MemoryPublisher

BROKER_MAX_MESSAGE = 128 * MIB  # RabbitMQ's default max_message_size (3.8 and later)


class _Delivered:
    """An ingress delivery, as much of one as the dispatcher reads."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.routing_key = "bucketfn.ingress"
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


async def test_an_ingress_dead_letter_fits_the_broker_whatever_arrived() -> None:
    # Fixed (issue 15 defect 6): it was re-wrapped as base64, 4/3 the size, past the
    # broker's maximum; now the body goes as it came, the reason in a bounded header.
    body = b"probe " + b"\xff" * (97 * MIB)
    publisher = MemoryPublisher()
    delivered = _Delivered(body)
    await Dispatcher(App([]), publisher, Queues("t")).handle(cast("Any", delivered))
    [(queue, sent, meta)] = publisher.messages
    assert queue == "t.ingress.dlq"
    assert sent == body
    assert len(sent) + sum(len(str(v)) for v in meta["headers"].values()) < BROKER_MAX_MESSAGE
    assert delivered.acked


def test_a_key_the_store_refuses_to_name_is_dead_lettered_at_once() -> None:
    answer: Any = {
        "Error": {"Code": "XMinioInvalidObjectName", "Message": "Object name contains "},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    refused = ClientError(answer, "GetObject")
    error = translate(refused, "GET job-inputs/uploads//double.csv")
    decision = retry.decide(RetryPolicy(), error=error, attempt=1, age=0.0)
    assert decision.verdict is retry.Verdict.DEAD_LETTER
