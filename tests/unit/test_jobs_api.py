"""The jobs API's HTTP contract without servers: auth, problems, limits, presigning, OpenAPI.

The application runs in-process on the in-memory harness; presigning is a
local computation, so the real signer runs (on a client no request ever leaves).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import orjson
import pytest
from pydantic import SecretStr

from runtime.adapters.s3 import S3Storage
from runtime.core import names
from runtime.core.errors import BrokerError, ConfigError
from runtime.core.records import Invocation
from runtime.core.settings import Settings
from runtime.engine.worker import Worker
from runtime.http.jobs import Services, create_app
from runtime.http.jobs.auth import check_exposure, loopback, token_from
from runtime.http.jobs.presign import Presigner
from runtime.testing.memory import MemoryPublisher, MemoryStorage
from tests.unit.test_jobs import APP

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    http: httpx.AsyncClient
    storage: MemoryStorage
    publisher: MemoryPublisher
    settings: Settings
    missing: list[str]


def no_broker() -> Any:
    raise BrokerError("not connected to RabbitMQ (reconnecting)")


SETTINGS = Settings(queue_prefix="unit")


@pytest.fixture(scope="module")
async def presigner() -> AsyncIterator[Presigner]:
    # One client for the module: making one loads botocore's S3 model (~0.5 s).
    async with S3Storage.connect(SETTINGS) as s3:
        yield Presigner(s3.client)


@pytest.fixture
async def api(presigner: Presigner) -> AsyncIterator[Api]:
    storage, publisher, missing = MemoryStorage(), MemoryPublisher(), list[str]()
    services = Services(
        settings=SETTINGS,
        app=APP,
        storage=storage,
        publisher=publisher,
        presigner=presigner,
        broker=no_broker,
        missing=lambda: missing,
    )
    transport = httpx.ASGITransport(app=create_app(services, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(http, storage, publisher, SETTINGS, missing)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


# --- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Bearer not-the-token-at-all"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, None),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid_token"),
    ],
)
async def test_every_route_but_the_probes_needs_the_token(
    api: Api, headers: dict[str, str], error: str | None
) -> None:
    for method, path, body in [
        ("GET", "/v1/functions", None),
        ("POST", "/v1/uploads", {"key": "uploads/a.csv"}),
        ("POST", "/v1/jobs", {"function": "x", "input": {"bucket": "b", "key": "k"}}),
        ("GET", f"/v1/jobs/{'0' * 32}", None),
        ("GET", "/v1/dead-letters", None),
        ("POST", "/v1/dead-letters/replay", {"all": True}),
    ]:
        r = await api.http.request(method, path, json=body, headers=headers)
        found = problem(r, 401)
        assert found["type"] == "/problems/unauthorized"
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="bucketfn"')
        assert (f'error="{error}"' in challenge) == (error is not None)
    assert (await api.http.get("/healthz")).status_code == 200
    assert (await api.http.get("/readyz")).status_code == 200


async def test_the_right_token_is_let_through(api: Api) -> None:
    r = await api.http.get("/v1/functions", headers=AUTH)
    assert r.status_code == 200
    [fn] = r.json()["functions"]
    assert fn == {
        "name": "strict_count",
        "bucket": "job-inputs",
        "prefix": "uploads/",
        "suffixes": [".txt"],
        "events": sorted(fn["events"]),
        "queue": "unit.fn.strict_count",
        "version": APP.routes[0].version,
    }


async def test_readiness_names_what_is_missing(api: Api) -> None:
    api.missing.append("rabbitmq: not connected")
    r = await api.http.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"ready": False, "missing": ["rabbitmq: not connected"]}


def test_tokens_come_from_the_setting_else_the_file(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("  from-the-file-0123456789\n")
    assert token_from(SecretStr("from-the-env-0123456789"), file) == "from-the-env-0123456789"
    assert token_from(None, file) == "from-the-file-0123456789"
    assert token_from(None, None) is None
    with pytest.raises(ConfigError, match="shorter than 16"):
        token_from(SecretStr("short"), None)
    with pytest.raises(ConfigError, match="cannot read the API token"):
        token_from(None, tmp_path / "absent")


def test_no_token_means_loopback_only() -> None:
    assert all(loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost"))
    assert not any(loopback(h) for h in ("0.0.0.0", "::", "10.1.2.3", "api.example"))
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="without a token"):
        check_exposure("0.0.0.0", None)


def test_the_command_refuses_to_serve_everyone_without_a_token() -> None:
    env = {
        "BUCKETFN_API_ADDRESS": "0.0.0.0:0",
        "PATH": "",
        "BUCKETFN_S3_ENDPOINT": "http://127.0.0.1:9",
    }
    shown = subprocess.run(
        [sys.executable, "-m", "runtime", "api"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert shown.returncode == 2, shown.stderr
    assert "refusing to serve the jobs API on 0.0.0.0 without a token" in shown.stderr


# --- uploads ----------------------------------------------------------------------------


async def test_a_presigned_put_names_one_key_and_its_expiry(api: Api) -> None:
    r = await api.http.post(
        "/v1/uploads",
        json={"key": "uploads/données 2026.csv", "expires_in": 60, "content_type": "text/csv"},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["method"], body["bucket"], body["key"]) == (
        "PUT",
        "job-inputs",
        "uploads/données 2026.csv",
    )
    assert body["headers"] == {"Content-Type": "text/csv"} and body["fields"] == {}
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}" == api.settings.s3_endpoint
    assert unquote(url.path) == "/job-inputs/uploads/données 2026.csv"
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-SignedHeaders"] == ["content-type;host"]


async def test_a_presigned_post_carries_its_size_limit_in_the_policy(api: Api) -> None:
    r = await api.http.post(
        "/v1/uploads",
        json={"key": "uploads/form.csv", "method": "POST", "max_bytes": 1000},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["method"] == "POST" and body["max_bytes"] == 1000 and body["headers"] == {}
    assert body["url"] == f"{api.settings.s3_endpoint}/job-inputs"
    assert body["fields"]["key"] == "uploads/form.csv"
    policy = orjson.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 0, 1000] in policy["conditions"]
    assert {"key": "uploads/form.csv"} in policy["conditions"]


@pytest.mark.parametrize(
    ("payload", "pointer", "says"),
    [
        ({"key": "uploads/a.csv", "expires_in": 0}, "#/expires_in", "greater than or equal to 1"),
        ({"key": "uploads/a.csv", "expires_in": 86401}, "#/expires_in", "less than or equal"),
        ({"key": "uploads/../a.csv"}, "#/key", "'..'"),
        ({"key": "uploads/a/../../etc/passwd"}, "#/key", "'..'"),
        ({"key": "../uploads/a.csv"}, "#/key", "under 'uploads/'"),
        ({"key": "/etc/passwd"}, "#/key", "under 'uploads/'"),
        ({"key": "/uploads/a.csv"}, "#/key", "under 'uploads/'"),
        ({"key": "uploads//a.csv"}, "#/key", "empty"),
        ({"key": "uploads/"}, "#/key", "under 'uploads/'"),
        ({"key": "uploads/dir/"}, "#/key", "trailing"),
        ({"key": "uploads/.."}, "#/key", "'..'"),
        ({"key": "uploads/..%2F..%2Fx"}, "#/key", "percent-escapes such as %2F"),
        ({"key": "uploads%2F..%2Fx"}, "#/key", "under 'uploads/'"),
        ({"key": "uploads/a\\..\\b"}, "#/key", "'\\'"),
        ({"key": "uploads/\uff0e\uff0e/x"}, "#/key", "once Unicode-normalized"),
        ({"key": "uploads\uff0fx.csv"}, "#/key", "under 'uploads/'"),
        ({"key": "uploads/a\x00.csv"}, "#/key", "U+0000"),
        ({"key": "uploads/\u202egpj.exe"}, "#/key", "U+202E"),
        ({"key": "uploads/" + "é" * 600}, "#/key", "at most 1024 bytes"),
        ({"key": "uploads/a.csv", "max_bytes": 10}, "#/max_bytes", "POST only"),
        ({"key": "uploads/a.csv", "content_type": "text/csv\r\nX: y"}, "#/content_type", "pattern"),
        ({"key": "uploads/a.csv", "expires": 60}, "#/expires", "Extra inputs"),
    ],
)
async def test_uploads_outside_the_limits_are_422_saying_why(
    api: Api, payload: dict[str, Any], pointer: str, says: str
) -> None:
    body = problem(await api.http.post("/v1/uploads", json=payload, headers=AUTH), 422)
    assert body["type"] == "/problems/invalid-request"
    assert body["instance"] == "/v1/uploads"
    [error] = body["errors"]
    assert error["pointer"] == pointer
    assert says in error["detail"]
    assert says in body["detail"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00"])
async def test_a_body_that_is_not_json_is_400(api: Api, body: bytes) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    r = await api.http.post("/v1/jobs", content=body, headers=headers)
    assert problem(r, 400)["type"] == "/problems/invalid-json"


async def test_a_body_past_the_limit_is_413(api: Api) -> None:
    padding = "x" * 300_000
    r = await api.http.post("/v1/uploads", json={"key": padding}, headers=AUTH)
    assert "POST /v1/uploads" in problem(r, 413)["detail"]


# --- jobs -------------------------------------------------------------------------------


async def create(api: Api, **extra: Any) -> httpx.Response:
    payload = {
        "function": "strict_count",
        "input": {"bucket": "job-inputs", "key": "uploads/a.txt"},
    }
    return await api.http.post("/v1/jobs", json={**payload, **extra}, headers=AUTH)


async def test_a_job_is_accepted_with_where_to_poll(api: Api) -> None:
    api.storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    r = await create(api)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    assert (
        body["status_url"] == r.headers["location"] == f"http://api.test/v1/jobs/{body['job_id']}"
    )
    [(queue, _, _)] = api.publisher.messages
    assert queue == "unit.fn.strict_count"
    state = (await api.http.get(body["status_url"], headers=AUTH)).json()
    assert state["status"] == "queued" and state["attempts"] == 0
    assert state["result_url"] is None and state["input"]["size"] == 5


async def test_a_finished_job_links_its_record_and_outputs(api: Api) -> None:
    api.storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    job_id = (await create(api)).json()["job_id"]
    _, body, _ = api.publisher.messages[0]
    worker = Worker(
        APP.routes[0],
        storage=api.storage,
        publisher=api.publisher,
        queues=api.settings.queues,
        output_bucket="job-outputs",
        chunk_size=1024,
    )
    await worker.process(Invocation.model_validate_json(body))
    r = await api.http.get(f"/v1/jobs/{job_id}", params={"expires_in": 120}, headers=AUTH)
    state = r.json()
    assert state["status"] == "succeeded" and state["output"] == {"bytes": 5}
    result = urlsplit(state["result_url"])
    assert result.path == f"/job-outputs/{names.job_result_key(job_id)}"
    assert parse_qs(result.query)["X-Amz-Expires"] == ["120"]
    [output] = state["outputs"]
    assert output["location"] == "s3://job-outputs/strict_count/uploads/a.txt/copy.txt"
    assert urlsplit(output["url"]).path == "/job-outputs/strict_count/uploads/a.txt/copy.txt"


@pytest.mark.parametrize(
    ("extra", "kind", "says"),
    [
        ({"function": "nope"}, "unknown-function", "known: strict_count"),
        ({"input": {"bucket": "job-inputs", "key": "uploads/a.csv"}}, "input-refused", ".txt"),
        ({"input": {"bucket": "job-inputs", "key": "uploads/b.txt"}}, "input-missing", "no object"),
    ],
)
async def test_jobs_that_cannot_run_are_refused_at_once(
    api: Api, extra: dict[str, Any], kind: str, says: str
) -> None:
    body = problem(await create(api, **extra), 422)
    assert body["type"] == f"/problems/{kind}"
    assert says in body["detail"]
    assert api.publisher.messages == []


async def test_an_idempotency_key_returns_the_same_job(api: Api) -> None:
    api.storage.put_bytes("job-inputs", "uploads/a.txt", b"hello")
    api.storage.put_bytes("job-inputs", "uploads/c.txt", b"other")
    first = (await create(api, idempotency_key="k-1")).json()
    again = await create(api, idempotency_key="k-1")
    assert again.status_code == 202 and again.json()["job_id"] == first["job_id"]
    assert len(api.publisher.messages) == 1
    other = {"bucket": "job-inputs", "key": "uploads/c.txt"}
    body = problem(await create(api, idempotency_key="k-1", input=other), 422)
    assert body["type"] == "/problems/idempotency-conflict"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/v1/jobs/{'0' * 32}", 404),
        ("/v1/jobs/not-a-job", 422),
        (f"/v1/jobs/{'A' * 32}", 422),
        (f"/v1/jobs/{'0' * 32}?expires_in=0", 422),
        (f"/v1/jobs/{'0' * 32}?expires_in=86401", 422),
    ],
)
async def test_job_lookups(api: Api, path: str, status: int) -> None:
    problem(await api.http.get(path, headers=AUTH), status)


@pytest.mark.parametrize(
    "payload",
    [
        {"function": "strict_count"},
        {"function": "strict_count", "input": {"bucket": "Not_A_Bucket", "key": "k"}},
        {"function": "strict_count", "input": {"bucket": "job-inputs", "key": ""}},
        {"function": "strict_count", "input": {"bucket": "job-inputs", "key": "a\x07"}},
        {
            "function": "strict_count",
            "input": {"bucket": "job-inputs", "key": "k"},
            "idempotency_key": "",
        },
    ],
)
async def test_malformed_job_requests_point_at_the_field(api: Api, payload: dict[str, Any]) -> None:
    body = problem(await api.http.post("/v1/jobs", json=payload, headers=AUTH), 422)
    assert body["errors"] and all(e["pointer"].startswith("#/") for e in body["errors"])


# --- dead letters, errors, the document --------------------------------------------------


async def test_broker_trouble_is_503_with_retry_after(api: Api) -> None:
    r = await api.http.get("/v1/dead-letters", headers=AUTH)
    body = problem(r, 503)
    assert body["type"] == "/problems/broker-unavailable"
    assert r.headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({}, "or select them with `all: true`"),
        ({"ids": [], "all": False}, "or select them with `all: true`"),
        ({"all": True, "fingerprint": "XYZ"}, "pattern"),
    ],
)
async def test_a_replay_names_entries_or_takes_all(
    api: Api, payload: dict[str, Any], says: str
) -> None:
    body = problem(await api.http.post("/v1/dead-letters/replay", json=payload, headers=AUTH), 422)
    assert says in body["detail"]


async def test_bad_since_is_422(api: Api) -> None:
    r = await api.http.get("/v1/dead-letters", params={"since": "yesterday"}, headers=AUTH)
    assert problem(r, 422)["errors"][0]["parameter"] == "since"


async def test_wrong_methods_and_paths_are_problems_too(api: Api) -> None:
    r = await api.http.delete("/v1/jobs", headers=AUTH)
    problem(r, 405)
    assert r.headers["allow"] == "POST"
    problem(await api.http.get("/v2/nothing", headers=AUTH), 404)


async def test_the_document_declares_what_the_api_does(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    operations = {
        f"{method.upper()} {path}": op
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert set(operations) == {
        "POST /v1/uploads",
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        "GET /v1/functions",
        "GET /v1/dead-letters",
        "POST /v1/dead-letters/replay",
        "GET /healthz",
        "GET /readyz",
    }
    for name, op in operations.items():
        probe = name in ("GET /healthz", "GET /readyz")
        assert (op.get("security") is None) == probe, name
        assert ("401" in op["responses"]) != probe, name
        for status, response in op["responses"].items():
            if int(status) >= 400 and not probe:
                assert set(response["content"]) == {"application/problem+json"}, (name, status)
    function = doc["components"]["schemas"]["JobRequest"]["properties"]["function"]
    assert function["enum"] == ["strict_count"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
