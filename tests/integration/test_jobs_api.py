"""The jobs API as deployed: ``bucketfn api`` in its own process, on real MinIO and RabbitMQ.

No runtime consumes here, so what a job does to the broker is read off its
queue directly. The end-to-end flow through a running runtime is in
``tests/e2e/test_jobs.py``, which reuses :func:`serving`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from runtime.core.letters import DeadLetter
from runtime.core.records import ErrorInfo, Invocation, dumps
from runtime.core.settings import Settings
from tests.servers import deployment_env, require_minio, s3_client, unique

if TYPE_CHECKING:
    from runtime.adapters.amqp import Broker

ROOT = Path(__file__).resolve().parents[2]
CSV = b'id,note\n1,"two\nlines"\n2,plain\n'


@dataclass
class Api:
    """A running ``bucketfn api`` and a client holding its token."""

    url: str
    token: str
    http: httpx.AsyncClient
    log: list[bytes] = field(default_factory=list)


async def _listening(process: asyncio.subprocess.Process, log: list[bytes]) -> int:
    """The port from the API's "listening" log line (it binds port 0 itself: no race)."""
    assert process.stderr is not None
    while line := await process.stderr.readline():
        log.append(line)
        with contextlib.suppress(orjson.JSONDecodeError):
            entry = orjson.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "jobs API listening":
                return int(entry["port"])
    await process.wait()
    pytest.fail(f"bucketfn api exited ({process.returncode}):\n{b''.join(log).decode()}")


async def _keep_reading(process: asyncio.subprocess.Process, log: list[bytes]) -> None:
    assert process.stderr is not None
    while line := await process.stderr.readline():
        log.append(line)


async def wait_ready(http: httpx.AsyncClient, timeout: float = 30) -> None:
    """Poll ``/readyz`` until it says ready."""
    deadline = time.monotonic() + timeout
    while (r := await http.get("/readyz")).status_code != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"the API did not become ready: {r.text}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, ready: bool = True, **env: str) -> AsyncIterator[Api]:
    """Run ``bucketfn api`` for ``settings``' deployment; it must stop with 0 on SIGTERM."""
    token = secrets.token_hex(16)
    environment = {
        **deployment_env(settings),
        "BUCKETFN_API_ADDRESS": "127.0.0.1:0",
        "BUCKETFN_API_TOKEN": token,
        "BUCKETFN_LOG_FORMAT": "json",
        "BUCKETFN_LOG_LEVEL": "INFO",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runtime",
        "api",
        "functions:app",
        cwd=ROOT,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[bytes] = []
    try:
        port = await asyncio.wait_for(_listening(process, log), 60)
        reader = asyncio.create_task(_keep_reading(process, log))
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            if ready:
                await wait_ready(http)
            yield Api(url=url, token=token, http=http, log=log)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        await reader
        assert code == 0, b"".join(log).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture(scope="module")
async def api(broker: Broker, settings: Settings) -> AsyncIterator[Api]:
    require_minio(s3_client(settings))
    async with serving(settings) as running:
        yield running


async def taken(broker: Broker, queue: str) -> list[bytes]:
    """Every message on ``queue``, removed from it."""
    bodies: list[bytes] = []
    async with broker.channel() as channel:
        q = await broker.existing(channel, queue)
        while (message := await q.get(no_ack=False, fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
    return bodies


async def upload(api: Api, key: str, body: bytes, **extra: Any) -> httpx.Response:
    """Presign through the API, then PUT with a plain HTTP client (no S3 library)."""
    grant = await api.http.post("/v1/uploads", json={"key": key, **extra})
    assert grant.status_code == 201, grant.text
    signed = grant.json()
    async with httpx.AsyncClient(timeout=30) as plain:
        return await plain.put(signed["url"], content=body, headers=signed["headers"])


def job_request(key: str, **extra: Any) -> dict[str, Any]:
    return {"function": "csv_row_count", "input": {"bucket": "job-inputs", "key": key}, **extra}


async def test_a_presigned_put_uploads_with_plain_http(api: Api, settings: Settings) -> None:
    key = f"uploads/{unique('put')}/données.csv"
    put = await upload(api, key, CSV, content_type="text/csv")
    assert put.status_code == 200, put.text
    head = await asyncio.to_thread(s3_client(settings).head_object, Bucket="job-inputs", Key=key)
    assert head["ContentLength"] == len(CSV) and head["ContentType"] == "text/csv"
    assert head["ETag"] == put.headers["etag"]


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"key": "uploads/a.csv", "expires_in": 0}, "#/expires_in"),
        ({"key": "uploads/a.csv", "expires_in": 86401}, "#/expires_in"),
        ({"key": "uploads/../outside.csv"}, "#/key"),
        ({"key": "uploads/..%2F..%2Foutside.csv"}, "#/key"),
        ({"key": "/job-inputs/uploads/a.csv"}, "#/key"),
        ({"key": "uploads/\uff0e\uff0e/outside.csv"}, "#/key"),
        ({"key": "uploads/\u202ecsv.exe"}, "#/key"),
    ],
)
async def test_the_live_api_holds_its_limits(
    api: Api, payload: dict[str, Any], pointer: str
) -> None:
    r = await api.http.post("/v1/uploads", json=payload)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in r.json()["errors"]] == [pointer]


async def test_a_signed_content_type_must_be_sent(api: Api) -> None:
    grant = (
        await api.http.post(
            "/v1/uploads", json={"key": f"uploads/{unique()}.csv", "content_type": "text/csv"}
        )
    ).json()
    async with httpx.AsyncClient() as plain:
        r = await plain.put(grant["url"], content=CSV, headers={"Content-Type": "text/html"})
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


async def test_a_presigned_post_enforces_its_size_limit(api: Api, settings: Settings) -> None:
    key = f"uploads/{unique('post')}.csv"
    grant = await api.http.post("/v1/uploads", json={"key": key, "method": "POST", "max_bytes": 40})
    assert grant.status_code == 201, grant.text
    form = grant.json()
    async with httpx.AsyncClient(timeout=30) as browser:
        small = await browser.post(form["url"], data=form["fields"], files={"file": ("a.csv", CSV)})
        big = await browser.post(
            form["url"], data=form["fields"], files={"file": ("a.csv", CSV + b"3,too much\n")}
        )
    assert small.status_code == 204, small.text
    assert big.status_code == 400 and "EntityTooLarge" in big.text
    head = await asyncio.to_thread(s3_client(settings).head_object, Bucket="job-inputs", Key=key)
    assert head["ContentLength"] == len(CSV)  # the refused upload changed nothing


async def test_an_expired_url_is_refused_by_the_store(api: Api) -> None:
    grant = (
        await api.http.post("/v1/uploads", json={"key": f"uploads/{unique()}.csv", "expires_in": 2})
    ).json()
    async with httpx.AsyncClient(timeout=30) as plain:
        assert (await plain.put(grant["url"], content=CSV)).status_code == 200
        deadline = time.monotonic() + 20
        while (r := await plain.put(grant["url"], content=CSV)).status_code == 200:
            assert time.monotonic() < deadline, "the URL was still accepted 20 s after it expired"
            await asyncio.sleep(0.25)
    assert r.status_code == 403 and "Request has expired" in r.text


async def test_a_job_is_one_invocation_on_the_function_queue(
    api: Api, broker: Broker, settings: Settings
) -> None:
    queue = settings.queues.function("csv_row_count")
    await taken(broker, queue)
    key = f"uploads/{unique('job')}.csv"
    put = await upload(api, key, CSV)
    created = await api.http.post("/v1/jobs", json=job_request(key))
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "queued" and created.headers["location"] == job["status_url"]
    [body] = await taken(broker, queue)
    inv = Invocation.model_validate_json(body)
    assert (inv.job_id, inv.function, inv.event.key) == (job["job_id"], "csv_row_count", key)
    assert inv.event.etag == put.headers["etag"].strip('"')
    state = (await api.http.get(job["status_url"])).json()
    assert (state["status"], state["attempts"], state["result_url"]) == ("queued", 0, None)
    assert state["input"]["etag"] == inv.event.etag and state["input"]["size"] == len(CSV)
    # Overwrite the input: the queued job can never run on what it named.
    await upload(api, key, CSV + b"3,more\n")
    stale = (await api.http.get(job["status_url"])).json()
    assert stale["status"] == "failed" and stale["error"]["type"] == "runtime.Superseded"


async def test_the_same_idempotency_key_is_the_same_job(
    api: Api, broker: Broker, settings: Settings
) -> None:
    queue = settings.queues.function("csv_row_count")
    await taken(broker, queue)
    key = f"uploads/{unique('idem')}.csv"
    await upload(api, key, CSV)
    idem = unique("order")
    first = (await api.http.post("/v1/jobs", json=job_request(key, idempotency_key=idem))).json()
    again = await api.http.post("/v1/jobs", json=job_request(key, idempotency_key=idem))
    assert again.status_code == 202 and again.json()["job_id"] == first["job_id"]
    assert len(await taken(broker, queue)) == 1  # queued once
    other = await api.http.post(
        "/v1/jobs", json=job_request(f"uploads/{unique()}.csv", idempotency_key=idem)
    )
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-conflict"


async def test_jobs_that_cannot_run_are_refused_before_anything_is_queued(
    api: Api, broker: Broker, settings: Settings
) -> None:
    queue = settings.queues.function("csv_row_count")
    await taken(broker, queue)
    json_key = f"uploads/{unique()}.json"
    await upload(api, json_key, b"{}")
    for request, kind in [
        (job_request(f"uploads/{unique()}.csv"), "input-missing"),
        (job_request(json_key), "input-refused"),
        ({**job_request(json_key), "function": "nope"}, "unknown-function"),
    ]:
        r = await api.http.post("/v1/jobs", json=request)
        assert r.status_code == 422 and r.json()["type"] == f"/problems/{kind}", r.text
    assert await taken(broker, queue) == []


async def test_auth_on_the_live_process(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/v1/functions")).status_code == 401
        wrong = await anonymous.get(
            "/v1/functions", headers={"Authorization": "Bearer " + "0" * 32}
        )
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        assert (await anonymous.get("/healthz")).status_code == 200
    listed = (await api.http.get("/v1/functions")).json()["functions"]
    assert "csv_row_count" in {f["name"] for f in listed}


async def test_dead_letters_are_listed_and_replayed(
    api: Api, broker: Broker, settings: Settings
) -> None:
    queues = settings.queues
    await taken(broker, queues.function("csv_row_count"))
    job_id = "f" * 32
    event = {"event_id": job_id, "event_name": "s3:ObjectCreated:Put", "bucket": "job-inputs"}
    inv = Invocation.model_validate(
        {"function": "csv_row_count", "job_id": job_id, "event": {**event, "key": "uploads/x.csv"}}
    )
    letter = DeadLetter(
        id=unique("letter"),
        function="csv_row_count",
        function_version="v",
        reason="permanent error",
        invocation=inv,
        error=ErrorInfo(
            type="runtime.InputError", message="unterminated quote", fingerprint="abc123abc123"
        ),
    )
    await broker.publish(queues.dead_letter("csv_row_count"), dumps(letter), message_id=letter.id)
    listed = await api.http.get(
        "/v1/dead-letters", params={"function": "csv_row_count", "error": "unterminated"}
    )
    assert listed.status_code == 200, listed.text
    [entry] = [e for e in listed.json()["entries"] if e["id"] == letter.id]
    assert entry["job_id"] == job_id and entry["fingerprint"] == "abc123abc123"
    assert entry["key"] == "uploads/x.csv" and entry["kind"] == "dead-letter"
    dry = await api.http.post("/v1/dead-letters/replay", json={"ids": [letter.id], "dry_run": True})
    assert dry.json() == {"replayed": [letter.id], "skipped": {}, "dry_run": True}
    assert await taken(broker, queues.function("csv_row_count")) == []
    done = await api.http.post("/v1/dead-letters/replay", json={"ids": [letter.id]})
    assert done.json()["replayed"] == [letter.id]
    [replayed] = await taken(broker, queues.function("csv_row_count"))
    again = Invocation.model_validate_json(replayed)
    assert (again.job_id, again.replays, again.attempt) == (job_id, 1, 1)
    after = (await api.http.get("/v1/dead-letters", params={"function": "csv_row_count"})).json()
    assert letter.id not in {e["id"] for e in after["entries"]}


async def test_without_rabbitmq_it_serves_and_says_why_not_ready(settings: Settings) -> None:
    with socket_closed() as port:
        async with serving(
            settings, ready=False, BUCKETFN_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{port}/"
        ) as api:
            r = await api.http.get("/readyz")
            assert r.status_code == 503 and "rabbitmq: not connected" in r.json()["missing"]
            dead = await api.http.get("/v1/dead-letters")
            assert dead.status_code == 503 and dead.headers["retry-after"] == "5"
            assert dead.json()["type"] == "/problems/broker-unavailable"


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    yield port


async def test_schemathesis_finds_nothing_against_the_live_api(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    # The schema's example input exists, so the examples and stateful phases create
    # real jobs and follow the POST /v1/jobs → GET /v1/jobs/{job_id} link.
    await upload(api, "uploads/sales-2026.csv", CSV)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
[auth.openapi.HTTPBearer]
bearer = "{api.token}"

# A schema-valid job can still name an object that does not exist or that the
# function does not take: 422 is the documented answer, not a failure.
[[operations]]
include-path = "/v1/jobs"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "422"]
"""
    )
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "20261201",
        # One worker: CPython 3.11.7's ast module is not thread-safe ("AST constructor
        # recursion depth mismatch"), and hypothesis parses sources from every worker.
        "--workers",
        "1",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 280)
    report = out.decode()
    assert process.returncode == 0, report
    assert "8 selected / 8 total" in report and "Tested: 8" in report, report
    assert "unique failure" not in report, report
