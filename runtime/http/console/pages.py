"""The console's page, its live updates and the result of one invocation.

``GET /`` is the page itself: static, public, holding no data, so a browser
can open it before it has the token. Everything it shows comes from routes
behind the API's bearer token, fetched by its script with
``Authorization: Bearer`` (never a cookie, so no other site can make a
browser send it).

Live updates are a long poll, not a stream: ``GET /console/updates`` answers
as soon as anything changed since the version the page has, or after
``WAIT_S`` seconds. A person sees an outcome within milliseconds of the feed
delivering it, every request is authenticated again, and a request in flight
when the API stops ends within ``WAIT_S`` — well inside uvicorn's graceful
shutdown, which a never-ending event stream would hold for its whole timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from runtime.core import names
from runtime.core.errors import ObjectGone
from runtime.core.records import Result
from runtime.http.console import views

if TYPE_CHECKING:
    from jinja2 import Environment

    from runtime.http.console.backend import Backend
    from runtime.http.console.hub import Hub, Seen

WAIT_S = 3.0
LINK_EXPIRY_S = 900  # presigned links on a page: long enough to click, short enough to leak little
MAX_RECORD_BYTES = 1024 * 1024  # a record bigger than this is linked, not shown
NO_STORE = {"Cache-Control": "no-store"}


def html(body: str) -> HTMLResponse:
    """A fragment the page puts in place; never cached (it is behind the token)."""
    return HTMLResponse(body, headers=NO_STORE)


def shell(backend: Backend, env: Environment, *, asset: str, token_required: bool) -> APIRouter:
    """``GET /``: the page, with a content security policy that allows only itself."""
    routes = APIRouter(include_in_schema=False)
    settings = backend.settings
    store = settings.s3_endpoint.rstrip("/")
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {store}",  # uploads go straight to the store
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )
    page = env.get_template("page.html").render(
        asset=asset,
        token_required=token_required,
        upload_bucket=settings.upload_bucket,
        upload_prefix=settings.upload_prefix,
    )
    headers = {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

    @routes.get("/", response_class=HTMLResponse)
    async def console_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    return routes


def private(backend: Backend, hub: Hub, env: Environment) -> APIRouter:
    """The routes the page reads, behind the token."""
    routes = APIRouter(include_in_schema=False)
    app, settings = backend.app, backend.settings
    row, overview = env.get_template("invocation.html"), env.get_template("overview.html")
    letters = env.get_template("letters.html")

    def render_row(seen: Seen) -> str:
        note = seen.note
        clickable = bool(note.function and note.key and note.function in app.by_name)
        return row.render(seq=seen.seq, n=note, clickable=clickable)

    @routes.get("/console/updates")
    async def console_updates(
        v: Annotated[int, Query(ge=-1, description="The version the page has.")] = -1,
        seq: Annotated[int, Query(ge=0, description="The last invocation it has.")] = 0,
        lv: Annotated[int, Query(ge=-1, description="The dead letters' version it has.")] = -1,
    ) -> JSONResponse:
        hub.touch()
        await hub.changed(v, WAIT_S)
        reset = seq < hub.base or seq > hub.seq  # a new watch, or a restarted API
        fresh = [s for s in hub.notes if reset or s.seq > seq]
        body: dict[str, Any] = {
            "version": hub.version,
            "seq": hub.seq,
            "reset": reset,
            "live": hub.live,
            "feed_error": hub.feed_error,
            "since": hub.since.isoformat() if hub.since else None,
            "dropped": hub.dropped,
            "rows": [render_row(s) for s in fresh],
            "overview": overview.render(
                report=hub.report,
                functions=views.functions(app, hub.report, hub.letters, hub.outcomes),
                ingress=next((r for r in hub.report.rows if r.function is None), None)
                if hub.report
                else None,
            ),
            "letters_version": hub.letters_version,
            "letters": None,
        }
        if lv != hub.letters_version:
            body["letters"] = letters.render(
                letters=hub.letters,
                groups=views.groups(hub.letters.entries) if hub.letters else [],
            )
        return JSONResponse(body, headers=NO_STORE)

    record = env.get_template("record.html")

    @routes.get("/console/record", response_class=HTMLResponse)
    async def console_record(
        function: Annotated[str, Query(max_length=63)],
        key: Annotated[str, Query(min_length=1, max_length=names.MAX_KEY_BYTES)],
        event_id: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        """The record an invocation left, and signed links to it and to what it wrote."""
        if function not in app.by_name:
            raise HTTPException(404, f"no function {function!r} in this deployment")
        # A job's record has a key of its own; its event id is the job id.
        keys = [names.job_result_key(event_id)] if names.valid_job_id(event_id) else []
        keys.append(names.result_key(function, key))
        for where in keys:
            body = await _read(backend, settings.output_bucket, where)
            if body is not None:
                break
        else:
            return html(record.render(function=function, key=key, found=False))
        context = await _links(backend, where, body)
        return html(
            record.render(function=function, key=key, found=True, asked=event_id, **context)
        )

    return routes


async def _read(backend: Backend, bucket: str, key: str) -> bytes | None:
    """The first ``MAX_RECORD_BYTES`` + 1 bytes of an object, or None if it is not there."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in backend.storage.stream(bucket, key):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RECORD_BYTES:
                break
    except ObjectGone:
        return None
    return b"".join(chunks)


async def _links(backend: Backend, key: str, body: bytes) -> dict[str, Any]:
    """What the record template shows of a record: parsed when it can be, and links."""
    sign = backend.presigner.get
    bucket = backend.settings.output_bucket
    result: Result | None = None
    document: Any = None
    if len(body) <= MAX_RECORD_BYTES:
        try:
            document = orjson.loads(body)
            result = Result.model_validate(document)
        except (orjson.JSONDecodeError, ValidationError):
            result = None
    outputs: list[tuple[str, str]] = []
    for location in result.outputs if result else ():
        out_bucket, _, out_key = location.removeprefix("s3://").partition("/")
        outputs.append((location, await sign(out_bucket, out_key, expires_in=LINK_EXPIRY_S)))
    source = None
    if result is not None:
        src = result.source
        source = await sign(src.bucket, src.key, expires_in=LINK_EXPIRY_S)
    return {
        "location": f"s3://{bucket}/{key}",
        "result": result,
        "document": document,
        "too_big": len(body) > MAX_RECORD_BYTES,
        "result_url": await sign(bucket, key, expires_in=LINK_EXPIRY_S),
        "source_url": source,
        "outputs": outputs,
        "expires_min": LINK_EXPIRY_S // 60,
    }
