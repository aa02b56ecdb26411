"""Mount the console on the jobs API: the page, its static files, its routes behind the token."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.staticfiles import StaticFiles

from runtime.http.console import letters, pages, views
from runtime.http.console.hub import Hub

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi import FastAPI, params

    from runtime.http.console.backend import Backend

STATIC = Path(__file__).with_name("static")
STATIC_PATH = "/console/static"


def _asset_version() -> str:
    """A digest of the static files: a new release is never served from a stale cache."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(STATIC.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def mount(
    app: FastAPI,
    backend: Backend,
    *,
    protect: Sequence[params.Depends],
    token_required: bool,
) -> Hub:
    """Serve the console at ``/`` on ``app``; every route but the page and its files needs
    ``protect``. Returns the hub that keeps its live state."""
    env = views.templates()
    hub = Hub(backend)
    shell = pages.shell(backend, env, asset=_asset_version(), token_required=token_required)
    app.include_router(shell)
    app.include_router(pages.private(backend, hub, env), dependencies=protect)
    app.include_router(letters.router(hub, env), dependencies=protect)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="console-static")
    return hub
