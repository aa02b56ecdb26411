"""An event naming a key the store cannot name must still end, as one dead letter.

Found by ``make faults`` (hostile row): a forged ingress event for
``uploads/p/../x.csv`` (or ``./x.csv``, ``a//b.csv``) makes MinIO answer 400 to
every HEAD and GET of its source. The invocation must end as a dead letter
within its retry policy's attempts — never cycle through the delay tiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from botocore.exceptions import ClientError

from runtime import Context, ObjectEvent, Router
from runtime.adapters.s3 import translate
from runtime.core.records import Invocation
from runtime.testing import Harness
from runtime.testing.memory import MemoryStorage

router = Router()
KEY = "uploads/p/../escape.csv"


@router.function(bucket="job-inputs", prefix="uploads/", suffix=".csv")
async def reader(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    """Reads its object, as every function does."""
    size = 0
    async for chunk in ctx.read(event):
        size += len(chunk)
    return {"bytes": size}


class Unnameable(MemoryStorage):
    """MinIO's answer to any request naming ``KEY`` in the source bucket: 400."""

    async def head(self, bucket: str, key: str) -> Any:
        if (bucket, key) == ("job-inputs", KEY):
            # What the S3 adapter makes of MinIO's bodiless 400 to a HEAD.
            answer: Any = {"Error": {"Code": "400"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            raise translate(ClientError(answer, "HeadObject"), f"HEAD {bucket}/{key}")
        return await super().head(bucket, key)


@dataclass
class _Delivery:
    body: bytes
    acked: list[bool] = field(default_factory=list)

    async def ack(self) -> None:
        self.acked.append(True)

    async def reject(self, *, requeue: bool = False) -> None:
        self.acked.append(False)


async def test_an_event_for_an_unnameable_key_ends_as_one_dead_letter() -> None:
    harness = Harness()
    harness.storage = Unnameable()
    route = router.routes[0]
    worker = harness.worker(route)
    event = ObjectEvent(
        event_id="e1",
        event_name="s3:ObjectCreated:Put",
        bucket="job-inputs",
        key=KEY,
        etag="0" * 32,
        source="minio",
    )
    body = Invocation(function=route.name, event=event).model_dump_json().encode()
    limit = route.retry.max_attempts
    for _ in range(limit + 1):  # each delivery: the next retry the worker published
        await worker.handle(cast("Any", _Delivery(body)))
        sent = harness.publisher.messages
        if any(q == harness.queues.dead_letter(route.name) for q, _, _ in sent):
            break
        body = sent[-1][1]
    letters = harness.publisher.on(harness.queues.dead_letter(route.name))
    assert len(letters) == 1
