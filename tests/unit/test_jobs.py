"""Jobs without servers: creation checks, idempotency, and status from the real worker's record."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from runtime import App, Context, InputError, ObjectEvent, Router
from runtime.core import names
from runtime.core.errors import JobRefused
from runtime.core.names import Meta, Queues
from runtime.core.records import Invocation
from runtime.engine.outcome import Status
from runtime.engine.worker import Worker
from runtime.ops.jobs import Jobs, job_id_for
from runtime.testing.memory import MemoryPublisher, MemoryStorage

router = Router()


@router.function(bucket="job-inputs", prefix="uploads/", suffix=".txt")
async def strict_count(event: ObjectEvent, ctx: Context) -> dict[str, int]:
    data = b"".join([c async for c in ctx.read(event)])
    if b"bad" in data:
        raise InputError("content is malformed", where=f"byte {data.index(b'bad')}")
    await ctx.write("copy.txt", data)
    return {"bytes": len(data)}


APP = App([router])
QUEUE = Queues("unit").function("strict_count")


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def jobs(storage: MemoryStorage, publisher: MemoryPublisher) -> Jobs:
    return Jobs(
        APP, storage=storage, publisher=publisher, queue_prefix="unit", output_bucket="job-outputs"
    )


async def run_published(storage: MemoryStorage, publisher: MemoryPublisher) -> Status:
    """Deliver the last published invocation to the real worker, as its queue would."""
    queue, body, _ = publisher.messages[-1]
    assert queue == QUEUE
    worker = Worker(
        APP.routes[0],
        storage=storage,
        publisher=publisher,
        queues=Queues("unit"),
        output_bucket="job-outputs",
        chunk_size=64 * 1024,
    )
    return (await worker.process(Invocation.model_validate_json(body))).status


async def test_create_publishes_one_invocation_pinned_to_the_object(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    info = storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    job, created = await jobs.create("strict_count", "job-inputs", "uploads/a.txt")
    assert created and job.status == "queued" and names.valid_job_id(job.job_id)
    [(queue, body, meta)] = publisher.messages
    assert queue == QUEUE
    inv = Invocation.model_validate_json(body)
    assert inv.job_id == job.job_id and inv.function == "strict_count"
    assert (inv.event.etag, inv.event.size, inv.event.key) == (info.etag, 5, "uploads/a.txt")
    assert inv.event.event_id == job.job_id == meta["message_id"]
    spec = orjson.loads(storage.objects[("job-outputs", names.job_spec_key(job.job_id))].data)
    assert spec["function"] == "strict_count" and spec["event"]["etag"] == info.etag


async def test_the_record_goes_to_the_job_key_and_makes_it_succeed(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    job, _ = await jobs.create("strict_count", "job-inputs", "uploads/a.txt")
    assert await run_published(storage, publisher) is Status.OK
    assert ("job-outputs", names.job_result_key(job.job_id)) in storage.objects
    # Not beside the source key: that record belongs to the object's own events.
    assert ("job-outputs", names.result_key("strict_count", "uploads/a.txt")) not in storage.objects
    done = await jobs.get(job.job_id)
    assert done is not None and done.status == "succeeded" and done.attempts == 1
    assert done.record is not None and done.record.output == {"bytes": 5}
    assert done.record.outputs == ("s3://job-outputs/strict_count/uploads/a.txt/copy.txt",)


async def test_bad_input_ends_failed_with_the_error_and_a_dead_letter(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    storage.put_bytes("job-inputs", "uploads/b.txt", b"all bad")
    job, _ = await jobs.create("strict_count", "job-inputs", "uploads/b.txt")
    assert await run_published(storage, publisher) is Status.DEAD_LETTER
    failed = await jobs.get(job.job_id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error.type == "runtime.InputError"
    assert failed.error.where == "byte 4"
    [letter] = publisher.on(Queues("unit").dead_letter("strict_count"))
    assert letter["invocation"]["job_id"] == job.job_id


@pytest.mark.parametrize(
    ("function", "bucket", "key", "kind", "says"),
    [
        ("nope", "job-inputs", "uploads/a.txt", "unknown-function", "known: strict_count"),
        ("strict_count", "job-inputs", "uploads/a.csv", "input-refused", "ending in .txt"),
        ("strict_count", "job-inputs", "other/a.txt", "input-refused", "job-inputs/uploads/"),
        ("strict_count", "raw", "uploads/a.txt", "input-refused", "not on raw/uploads/a.txt"),
        ("strict_count", "job-inputs", "uploads/none.txt", "input-missing", "upload it first"),
    ],
)
async def test_refusals_say_why_and_publish_nothing(
    jobs: Jobs,
    storage: MemoryStorage,
    publisher: MemoryPublisher,
    function: str,
    bucket: str,
    key: str,
    kind: str,
    says: str,
) -> None:
    storage.put_bytes("job-inputs", "uploads/a.txt", b"x")
    storage.put_bytes("job-inputs", "uploads/a.csv", b"x")
    with pytest.raises(JobRefused) as refused:
        await jobs.create(function, bucket, key)
    assert refused.value.kind == kind
    assert says in refused.value.reason
    assert publisher.messages == []


async def test_a_function_never_runs_on_its_own_output(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    storage.put_bytes("job-inputs", "uploads/mine.txt", b"x", {Meta.FUNCTION: "strict_count"})
    with pytest.raises(JobRefused, match="its own output") as refused:
        await jobs.create("strict_count", "job-inputs", "uploads/mine.txt")
    assert refused.value.kind == "input-refused"
    assert publisher.messages == []


async def test_an_idempotency_key_names_one_job(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    storage.put_bytes("job-inputs", "uploads/a.txt", b"x")
    storage.put_bytes("job-inputs", "uploads/c.txt", b"y")
    first, created = await jobs.create(
        "strict_count", "job-inputs", "uploads/a.txt", idempotency_key="order-7"
    )
    again, again_created = await jobs.create(
        "strict_count", "job-inputs", "uploads/a.txt", idempotency_key="order-7"
    )
    assert created and not again_created
    assert again.job_id == first.job_id == job_id_for("order-7", scope="unit")
    assert len(publisher.messages) == 1
    with pytest.raises(JobRefused, match="use a new key") as refused:
        await jobs.create("strict_count", "job-inputs", "uploads/c.txt", idempotency_key="order-7")
    assert refused.value.kind == "idempotency-conflict"
    other, _ = await jobs.create(
        "strict_count", "job-inputs", "uploads/c.txt", idempotency_key="order-8"
    )
    assert other.job_id != first.job_id
    assert len(publisher.messages) == 2


def test_job_ids_are_fresh_without_a_key_and_scoped_with_one() -> None:
    assert job_id_for(None, scope="a") != job_id_for(None, scope="a")
    assert job_id_for("k", scope="a") == job_id_for("k", scope="a")
    assert job_id_for("k", scope="a") != job_id_for("k", scope="b")
    assert all(names.valid_job_id(job_id_for(k, scope="a")) for k in (None, "k", "ü" * 255))


@pytest.mark.parametrize(
    ("change", "error_type"), [("overwrite", "Superseded"), ("delete", "ObjectGone")]
)
async def test_a_queued_job_whose_input_changed_reads_failed_as_the_worker_drops_it(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher, change: str, error_type: str
) -> None:
    storage.put_bytes("job-inputs", "uploads/a.txt", b"first")
    job, _ = await jobs.create("strict_count", "job-inputs", "uploads/a.txt")
    assert (await jobs.get(job.job_id)).status == "queued"  # type: ignore[union-attr]
    if change == "overwrite":
        storage.put_bytes("job-inputs", "uploads/a.txt", b"second")
    else:
        del storage.objects[("job-inputs", "uploads/a.txt")]
    stale = await jobs.get(job.job_id)
    assert stale is not None and stale.status == "failed"
    assert stale.error is not None and stale.error.type == f"runtime.{error_type}"
    assert "create a new job" in stale.error.message
    # The worker agrees: it runs nothing and records nothing for it.
    assert await run_published(storage, publisher) is Status.SUPERSEDED
    assert ("job-outputs", names.job_result_key(job.job_id)) not in storage.objects


async def test_unknown_and_malformed_ids_are_no_job(jobs: Jobs) -> None:
    assert await jobs.get("0" * 32) is None
    assert await jobs.get("../../etc/passwd") is None


async def test_a_record_without_its_request_still_answers(
    jobs: Jobs, storage: MemoryStorage, publisher: MemoryPublisher
) -> None:
    # The request is stored after the publish; a crash in between leaves the record alone.
    storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    job, _ = await jobs.create("strict_count", "job-inputs", "uploads/a.txt")
    del storage.objects[("job-outputs", names.job_spec_key(job.job_id))]
    await run_published(storage, publisher)
    found = await jobs.get(job.job_id)
    assert found is not None and found.status == "succeeded"
    assert (found.function, found.event.key, found.created_at) == (
        "strict_count",
        "uploads/a.txt",
        None,
    )


def test_job_keys_accept_only_job_ids() -> None:
    job_id = "a" * 32
    assert names.job_result_key(job_id) == f"jobs/{job_id}/result.json"
    assert names.job_spec_key(job_id) == f"jobs/{job_id}/job.json"
    for bad in ("../x", "A" * 32, "a" * 31, f"{'a' * 31}/"):
        with pytest.raises(ValueError, match="invalid job id"):
            names.job_result_key(bad)
    event = ObjectEvent(event_id="e", event_name="s3:ObjectCreated:Put", bucket="b", key="k")
    with pytest.raises(ValidationError):
        Invocation(function="f", event=event, job_id="../../x")
