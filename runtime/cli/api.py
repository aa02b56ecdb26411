"""``bucketfn api``: serve the jobs API on BUCKETFN_API_ADDRESS."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from runtime.app.router import load_app
from runtime.cli.options import APP_ARGUMENT, settings_of
from runtime.http.jobs import serve
from runtime.http.jobs.auth import token_from

TOKEN_FILE = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="BUCKETFN_API_TOKEN_FILE",
        help="Read the bearer token from this file when BUCKETFN_API_TOKEN is unset "
        "(`make up` writes .state/api/token).",
        dir_okay=False,
    ),
]


def api(
    ctx: typer.Context, app: APP_ARGUMENT = "functions:app", token_file: TOKEN_FILE = None
) -> None:
    """Serve the jobs API (presigned uploads, jobs, dead letters) until SIGTERM or Ctrl-C.

    Every route but /healthz and /readyz needs `Authorization: Bearer <token>`.
    Without a token the API serves loopback only.
    """
    settings = settings_of(ctx)
    application = load_app(app)
    token = token_from(settings.api_token, token_file)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(application, settings, stop, token=token)

    if settings.event_loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    cli.command("api")(api)
