"""A bound on request bodies: every body the API takes is a small JSON document.

uvicorn reads whatever a client sends; without a bound, one request could
hold a large body in memory. A body over the bound is refused with 413 at its
first read when ``Content-Length`` says so, or as soon as a chunked one passes it.
The refusal is raised where the route reads the body, so it becomes a problem
response like every other error (FastAPI re-raises an HTTPException met there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 256 * 1024  # a replay of 1,000 ids fits; an uploaded file does not


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a ``receive`` that counts what it reads."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        seen = int(declared) if declared.isdigit() else 0

        async def counted() -> Message:
            nonlocal seen
            if seen > self.max_bytes:
                raise HTTPException(413, self._detail())
            message = await receive()
            if not declared.isdigit():
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return (
            f"request bodies are at most {self.max_bytes} bytes; send files to the store "
            "with a URL from POST /v1/uploads, not to the API"
        )
