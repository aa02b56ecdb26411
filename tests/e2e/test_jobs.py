"""Jobs end to end: the seeds' flow through ``bucketfn api`` and a running runtime.

Presign → PUT with a plain HTTP client → create a job → poll → download the
result through its presigned URL; and a broken file, which ends ``failed``, sits
in the dead-letter queue, and is replayed into the same job's record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from runtime.core.names import result_key
from tests.e2e.conftest import Stack
from tests.integration.test_jobs_api import Api, job_request, serving, upload
from tests.servers import unique, wait_for_object

CSV = b'id,note\n1,"two\nlines"\n2,plain\n'
BROKEN = b'id,note\n1,"never closed\n2,plain\n'


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with serving(stack.settings) as running:
        yield running


async def finished(api: Api, url: str, *, attempts: int = 1, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it is done with at least ``attempts`` attempts."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = (await api.http.get(url)).json()
        if state["status"] in ("succeeded", "failed") and state["attempts"] >= attempts:
            return state
        assert time.monotonic() < deadline, f"job still {state['status']} after {timeout} s"
        await asyncio.sleep(0.1)


async def test_presign_upload_run_poll_download(api: Api) -> None:
    key = f"uploads/{unique('e2e-job')}/sales.csv"
    put = await upload(api, key, CSV, content_type="text/csv")
    assert put.status_code == 200, put.text
    created = await api.http.post("/v1/jobs", json=job_request(key))
    assert created.status_code == 202, created.text
    job = created.json()
    state = await finished(api, job["status_url"])
    assert state["status"] == "succeeded", state
    assert state["output"] == {"rows": 2, "columns": ["id", "note"], "bytes": len(CSV)}
    assert (state["attempts"], state["error"]) == (1, None)
    assert state["input"]["etag"] == put.headers["etag"].strip('"')
    async with httpx.AsyncClient(timeout=30) as plain:
        download = await plain.get(state["result_url"])
        assert download.status_code == 200, download.text
        record = orjson.loads(download.content)
        assert record["status"] == "ok" and record["event_id"] == job["job_id"]
        assert record["output"] == state["output"]
        assert record["source"]["key"] == key
        # A link that has expired is refused by the store itself.
        short = (await api.http.get(job["status_url"], params={"expires_in": 1})).json()
        assert (await plain.get(short["result_url"])).status_code == 200
        deadline = time.monotonic() + 20
        while (late := await plain.get(short["result_url"])).status_code == 200:
            assert time.monotonic() < deadline, "the result URL outlived its expiry by 20 s"
            await asyncio.sleep(0.25)
        assert late.status_code == 403 and "Request has expired" in late.text


async def test_a_broken_file_fails_lands_in_the_dlq_and_replays_into_the_job(api: Api) -> None:
    key = f"uploads/{unique('e2e-broken')}/bad.csv"
    assert (await upload(api, key, BROKEN)).status_code == 200
    job = (await api.http.post("/v1/jobs", json=job_request(key))).json()
    state = await finished(api, job["status_url"])
    assert state["status"] == "failed" and state["output"] is None
    error = state["error"]
    assert error["type"] == "runtime.InputError" and "unterminated quoted field" in error["message"]
    assert error["where"] and state["attempts"] == 1  # malformed input: no retries burnt

    letters = (await api.http.get("/v1/dead-letters", params={"function": "csv_row_count"})).json()
    mine = [e for e in letters["entries"] if e["job_id"] == job["job_id"]]
    assert len(mine) == 1 and mine[0]["key"] == key
    assert mine[0]["fingerprint"] == error["fingerprint"]

    replay = await api.http.post("/v1/dead-letters/replay", json={"ids": [mine[0]["id"]]})
    assert replay.json()["replayed"] == [mine[0]["id"]]
    # The replay runs the same job again; the file is still broken, so it fails again,
    # into the same record, with both attempts in its history.
    again = await finished(api, job["status_url"], attempts=2)
    assert again["status"] == "failed" and again["attempts"] == 2
    later = (await api.http.get("/v1/dead-letters", params={"function": "csv_row_count"})).json()
    assert [e["id"] for e in later["entries"] if e["job_id"] == job["job_id"]] != [mine[0]["id"]]


async def test_a_job_and_the_objects_own_event_keep_separate_records(
    api: Api, stack: Stack
) -> None:
    # The upload itself is a bucket event: csv_row_count runs on it by its route too.
    key = f"uploads/{unique('e2e-both')}.csv"
    await upload(api, key, CSV)
    first = (await api.http.post("/v1/jobs", json=job_request(key))).json()
    second = (await api.http.post("/v1/jobs", json=job_request(key))).json()
    assert first["job_id"] != second["job_id"]
    done = [await finished(api, j["status_url"]) for j in (first, second)]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    assert done[0]["result_url"] != done[1]["result_url"]
    event_record = await wait_for_object(
        stack.s3, stack.settings.output_bucket, result_key("csv_row_count", key)
    )
    assert event_record["status"] == "ok" and event_record["event_id"] not in {
        first["job_id"],
        second["job_id"],
    }
