"""Least privilege and per-deployment routing on real MinIO and RabbitMQ.

Two deployments, ``bftx`` and ``bfty``, share one MinIO, one RabbitMQ and one
trigger bucket (X on ``x/``, Y on ``y/``). ``init`` (as the admin) gives each its
own notification target and routing key, and X's runtime runs as X's runtime
identity. Y runs no runtime: its ingress queue keeps whatever reaches it, so
what Y would have consumed is counted, not waited for.

The deployment names are fixed so their MinIO targets, which ``init`` adds and
MinIO loads only on a restart, are added once per MinIO and reused by later
runs; everything else (buckets, queues, users) is this run's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from runtime import App, Context, ObjectEvent, Router
from runtime.adapters.iam import Admin
from runtime.adapters.s3 import S3Storage
from runtime.core.names import Deployment, result_key
from runtime.core.settings import Settings
from runtime.engine.process import serve
from runtime.ops.identity import target_config
from runtime.ops.provision import init, merge_notifications, rule_prefix
from tests.servers import delete_queues, require_minio, require_rabbitmq, s3_client, wait_for_object

pytestmark = pytest.mark.integration

TOKEN = uuid.uuid4().hex[:8]
SHARED = f"bft-shared-{TOKEN}"  # both deployments trigger on it, each on its own prefix
FORBIDDEN = f"bft-forbidden-{TOKEN}"  # no route names it
API_SECRET = uuid.uuid4().hex


def _app(prefix: str) -> App:
    router = Router()

    @router.function(bucket=SHARED, prefix=prefix, name="copy")
    async def copy(event: ObjectEvent, ctx: Context) -> dict[str, int]:
        data = b"".join([c async for c in ctx.read(event)])
        await ctx.write("copy.bin", data)
        return {"bytes": len(data)}

    return App([router])


@dataclass
class Side:
    """One deployment: its app, its admin settings and its runtime's settings."""

    app: App
    admin: Settings
    runtime: Settings

    @property
    def out(self) -> str:
        return self.admin.output_bucket


def _side(name: str, prefix: str) -> Side:
    base = Settings()
    amqp = base.amqp_url.get_secret_value()
    # MinIO and RabbitMQ share the loopback here: MinIO reaches the broker as we do.
    url = amqp.rstrip("/")
    secret = uuid.uuid4().hex
    admin = Settings(
        deployment=name,
        queue_prefix=f"{name}-{TOKEN}",
        output_bucket=f"bft-{name}-out-{TOKEN}",
        minio_amqp_url=SecretStr(url),
        runtime_s3_secret_key=SecretStr(secret),
        api_s3_secret_key=SecretStr(API_SECRET),
        upload_bucket=SHARED,
        upload_prefix=f"{prefix}uploads/",
        sweep_interval=0,
    )
    runtime = admin.model_copy(
        update={
            "s3_access_key": admin.names.identity("runtime"),
            "s3_secret_key": SecretStr(secret),
            "runtime_s3_secret_key": None,
            "api_s3_secret_key": None,
            "metrics_address": "127.0.0.1:0",
        }
    )
    return Side(_app(prefix), admin, runtime)


async def _count(settings: Settings, queue: str) -> int:
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        channel = await conn.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def _until(check: Callable[[], Any], what: str, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"{what} within {within:g} s")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def sides() -> AsyncIterator[tuple[Side, Side]]:
    x, y = _side("bftx", "x/"), _side("bfty", "y/")
    await require_rabbitmq(x.admin)
    admin = s3_client(x.admin)
    require_minio(admin)
    admin.create_bucket(Bucket=FORBIDDEN)
    admin.put_object(Bucket=FORBIDDEN, Key="secret.txt", Body=b"not yours")
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        reports = [await init(x.app, x.admin), await init(y.app, y.admin)]
        ready = asyncio.Event()
        task = asyncio.create_task(serve(x.app, x.runtime, stop, ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        yield x, y
        # init again, once everything ran: nothing left to change.
        for side, first in zip((x, y), reports, strict=True):
            again = (await init(side.app, side.admin))["minio"]
            users = [side.admin.names.identity(role) for role in ("runtime", "api")]
            assert first["minio"]["identities_changed"] == users
            assert again == {"target_added": False, "identities_changed": []}
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 60)
        await _teardown(x, y)


async def _teardown(*sides: Side) -> None:
    from runtime.adapters.topology import queue_arguments
    from runtime.testing.real import _empty

    async with S3Storage.connect(sides[0].admin) as storage:
        for side in sides:
            with contextlib.suppress(Exception):
                await merge_notifications(storage.client, SHARED, [], rule_prefix(side.admin))
        for bucket in [SHARED, FORBIDDEN, *(s.out for s in sides)]:
            with contextlib.suppress(Exception):
                await _empty(storage, bucket)
                await storage.client.delete_bucket(Bucket=bucket)
    for side in sides:
        await delete_queues(side.admin, list(queue_arguments(side.admin, side.app)))
    async with Admin.connect(sides[0].admin) as admin:
        for side in sides:
            for role in ("runtime", "api"):
                await admin.remove_identity(side.admin.names.identity(role))


async def test_an_upload_runs_only_in_its_own_deployment(sides: tuple[Side, Side]) -> None:
    x, y = sides
    admin = s3_client(x.admin)
    key = f"x/{uuid.uuid4().hex[:8]}.bin"
    await asyncio.to_thread(admin.put_object, Bucket=SHARED, Key=key, Body=b"12345")
    # X's runtime, as X's runtime identity, read the upload and wrote its record and output.
    record = await wait_for_object(admin, x.out, result_key("copy", key))
    assert record["status"] == "ok"
    assert record["output"] == {"bytes": 5}
    body = admin.get_object(Bucket=x.out, Key=f"copy/{key}/copy.bin")["Body"].read()
    assert body == b"12345"
    # The event reached X long before its record appeared; it never reached Y's queue.
    assert await _count(y.admin, y.admin.queues.ingress) == 0

    # Y's binding is live: its own upload reaches its queue (and not X's runtime).
    mine = f"y/{uuid.uuid4().hex[:8]}.bin"
    await asyncio.to_thread(admin.put_object, Bucket=SHARED, Key=mine, Body=b"y")

    async def arrived() -> bool:
        return await _count(y.admin, y.admin.queues.ingress) == 1

    await _until(arrived, "Y's upload did not reach Y's ingress")
    with pytest.raises(ClientError):
        admin.head_object(Bucket=x.out, Key=result_key("copy", mine))


def _denied(call: Callable[[], Any]) -> None:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


async def test_the_runtime_identity_may_only_do_what_its_routes_need(
    sides: tuple[Side, Side],
) -> None:
    x, y = sides
    runtime = s3_client(x.runtime, attempts=1)
    # What it needs: read and list its trigger prefix, read and write its outputs.
    runtime.list_objects_v2(Bucket=SHARED, Prefix="x/")
    runtime.put_object(Bucket=x.out, Key="copy/probe/result.json", Body=b"{}")
    assert runtime.get_object(Bucket=x.out, Key="copy/probe/result.json")["Body"].read() == b"{}"
    # Not what it does not: a bucket no route names, Y's prefix and Y's outputs,
    # writing where it only reads, deleting, making buckets.
    _denied(lambda: runtime.get_object(Bucket=FORBIDDEN, Key="secret.txt"))
    _denied(lambda: runtime.put_object(Bucket=FORBIDDEN, Key="mine.txt", Body=b"x"))
    _denied(lambda: runtime.list_objects_v2(Bucket=FORBIDDEN))
    _denied(lambda: runtime.list_objects_v2(Bucket=SHARED, Prefix="y/"))
    _denied(lambda: runtime.list_objects_v2(Bucket=SHARED))
    _denied(lambda: runtime.put_object(Bucket=SHARED, Key="x/forged.bin", Body=b"x"))
    _denied(lambda: runtime.put_object(Bucket=y.out, Key="copy/forged/result.json", Body=b"x"))
    _denied(lambda: runtime.delete_object(Bucket=x.out, Key="copy/probe/result.json"))
    # MinIO answers ListBuckets with the buckets the policy names, never the others.
    listed = {b["Name"] for b in runtime.list_buckets()["Buckets"]}
    assert FORBIDDEN not in listed
    assert y.out not in listed
    assert x.out in listed
    _denied(lambda: runtime.create_bucket(Bucket=f"bft-new-{TOKEN}"))


async def test_what_the_api_presigns_can_do_only_what_the_api_may(
    sides: tuple[Side, Side],
) -> None:
    x, _ = sides
    api = s3_client(
        x.admin.model_copy(
            update={
                "s3_access_key": x.admin.names.identity("api"),
                "s3_secret_key": SecretStr(API_SECRET),
            }
        ),
        attempts=1,
    )

    def put(bucket: str, key: str) -> int:
        url = api.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
        return httpx.put(url, content=b"up").status_code

    # An upload URL works under the upload prefix, and nowhere else: not over a
    # result record, not in a bucket no route names.
    assert put(SHARED, "x/uploads/in.bin") == 200
    assert put(x.out, result_key("copy", "x/uploads/in.bin")) == 403
    assert put(FORBIDDEN, "secret.txt") == 403
    # Job specs under jobs/, and reading records, are the API's own.
    api.put_object(Bucket=x.out, Key=f"jobs/{uuid.uuid4().hex}/job.json", Body=b"{}")
    _denied(lambda: api.put_object(Bucket=x.out, Key="copy/x/forged/result.json", Body=b"x"))
    _denied(lambda: api.get_object(Bucket=FORBIDDEN, Key="secret.txt"))
    _denied(lambda: api.delete_object(Bucket=SHARED, Key="x/uploads/in.bin"))


async def test_a_target_is_configured_as_notify_env_says(sides: tuple[Side, Side]) -> None:
    x, _ = sides
    config = target_config(x.admin)
    assert config is not None
    assert config["routing_key"] == Deployment("bftx").routing_key == x.admin.routing_key
    async with Admin.connect(x.admin) as admin:
        assert x.admin.minio_target_arn in await admin.arns()
        assert "BFTX" in await admin.configured()
