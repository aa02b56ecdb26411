"""``POST /v1/uploads``: a presigned request that puts one file under the upload prefix.

"Your job must not accept raw files": the client sends the bytes to the object
store directly, with a URL the API signed for one key and a bounded time, and
then names the object in ``POST /v1/jobs``. PUT is for programs (``curl -T``);
POST is an HTML-form policy for browsers, with a maximum size the store enforces.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from runtime.core.records import now
from runtime.core.streams import MIB
from runtime.http.jobs import keys
from runtime.http.jobs.problems import documented
from runtime.http.jobs.services import Services

MAX_EXPIRY_S = 86_400  # a day: long enough for a slow upload, short enough to leak little
MAX_POST_BYTES = 5 * 1024 * MIB  # S3's limit on one PUT or POST
DEFAULT_POST_BYTES = 100 * MIB
_WORD = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
CONTENT_TYPE_PATTERN = rf"^{_WORD}/{_WORD}(; ?{_WORD}=[A-Za-z0-9!#$&^_.+-]{{1,64}})?$"


class UploadRequest(BaseModel):
    """Which key to upload to, for how long, and how."""

    # The schema says what the route checks: a size limit needs POST.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # 0 is not false, "900" is not 900: the types the schema says
        json_schema_extra={
            "anyOf": [
                {"properties": {"method": {"const": "POST"}}, "required": ["method"]},
                {"properties": {"max_bytes": {"type": "null"}}},
            ]
        },
    )

    key: str = Field(
        description="The object key, under the upload prefix (`uploads/`); taken literally.",
        examples=["uploads/sales-2026.csv"],
    )
    expires_in: int = Field(
        default=900, ge=1, le=MAX_EXPIRY_S, description="Seconds the URL stays valid."
    )
    content_type: str | None = Field(
        default=None,
        max_length=255,
        pattern=CONTENT_TYPE_PATTERN,
        description="Signed into the request: the upload must send this Content-Type.",
        examples=["text/csv"],
    )
    method: Literal["PUT", "POST"] = Field(
        default="PUT",
        description="`PUT`: a URL for `curl -T`. `POST`: an HTML-form policy with a size limit.",
    )
    max_bytes: int | None = Field(
        default=None,
        ge=1,
        le=MAX_POST_BYTES,
        description="POST only: the largest upload the store accepts "
        f"(default {DEFAULT_POST_BYTES}).",
    )


class Upload(BaseModel):
    """A signed request: send it before ``expires_at``."""

    url: str = Field(description="Where to send the file.")
    method: Literal["PUT", "POST"]
    headers: dict[str, str] = Field(description="Headers the request must carry (PUT).")
    fields: dict[str, str] = Field(
        description="Form fields to send before the file field (POST); empty for PUT."
    )
    bucket: str
    key: str
    expires_at: datetime
    max_bytes: int | None = Field(description="The size limit the store enforces (POST).")


def _refuse(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def router(services: Services) -> APIRouter:
    """The uploads route on ``services``."""
    settings = services.settings
    routes = APIRouter(tags=["uploads"])

    @routes.post(
        "/v1/uploads",
        status_code=201,
        response_model=Upload,
        responses=documented(400, 413, 422),
        summary="Presign an upload",
    )
    async def create_upload(request: UploadRequest) -> Upload:
        """Sign one upload to `key` in the upload bucket, valid for `expires_in` seconds.

        Keys are confined to the upload prefix: `..`, `.` and empty segments,
        backslashes, percent-escapes, control characters and anything that reads
        as those once Unicode-normalized are refused with 422.
        """
        try:
            key = keys.upload_key(request.key, settings.upload_prefix)
        except ValueError as exc:
            raise _refuse("key", str(exc)) from None
        if request.method == "PUT" and request.max_bytes is not None:
            raise _refuse(
                "max_bytes", "applies to POST only: a presigned PUT cannot bound the size"
            )
        bucket = settings.upload_bucket
        expires_at = now() + timedelta(seconds=request.expires_in)
        if request.method == "PUT":
            url, headers = await services.presigner.put(
                bucket, key, expires_in=request.expires_in, content_type=request.content_type
            )
            return Upload(
                url=url,
                method="PUT",
                headers=headers,
                fields={},
                bucket=bucket,
                key=key,
                expires_at=expires_at,
                max_bytes=None,
            )
        limit = request.max_bytes or DEFAULT_POST_BYTES
        url, fields = await services.presigner.post(
            bucket,
            key,
            expires_in=request.expires_in,
            max_bytes=limit,
            content_type=request.content_type,
        )
        return Upload(
            url=url,
            method="POST",
            headers={},
            fields=fields,
            bucket=bucket,
            key=key,
            expires_at=expires_at,
            max_bytes=limit,
        )

    return routes
