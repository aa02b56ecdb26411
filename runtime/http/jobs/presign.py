"""Presigned S3 requests: the API hands out URLs, the bytes never pass through it.

Signing is a local computation (SigV4 over the request and the expiry); no
request reaches the store until the client uses the URL, and the store checks
signature and expiry itself. A presigned PUT cannot bound the body's size; a
presigned POST carries a policy with a ``content-length-range`` that the store
enforces, which is why browsers get that one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class Presigner:
    """Sign GET, PUT and POST requests with the API's S3 credentials."""

    def __init__(self, client: S3Client) -> None:
        self._s3 = client

    async def get(self, bucket: str, key: str, *, expires_in: int) -> str:
        """A URL that downloads ``bucket/key`` until it expires."""
        return await self._s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=expires_in,
            HttpMethod="GET",
        )

    async def put(
        self, bucket: str, key: str, *, expires_in: int, content_type: str | None
    ) -> tuple[str, dict[str, str]]:
        """A URL that uploads ``bucket/key``, and the headers the upload must send."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        headers: dict[str, str] = {}
        if content_type:
            params["ContentType"] = content_type  # signed: the upload must send the same
            headers["Content-Type"] = content_type
        url = await self._s3.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_in, HttpMethod="PUT"
        )
        return url, headers

    async def post(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: int,
        max_bytes: int,
        content_type: str | None,
    ) -> tuple[str, dict[str, str]]:
        """A form target and its fields, for one upload of at most ``max_bytes`` to ``key``."""
        fields: dict[str, str] = {}
        conditions: list[Any] = [["content-length-range", 0, max_bytes]]
        if content_type:
            fields["Content-Type"] = content_type
            conditions.append({"Content-Type": content_type})
        form = await self._s3.generate_presigned_post(
            Bucket=bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return str(form["url"]), {str(k): str(v) for k, v in form["fields"].items()}
