"""Options every command group shares, with their environment fallbacks."""

from __future__ import annotations

from typing import Annotated

import typer

from runtime.core.settings import Settings

APP = Annotated[
    str,
    typer.Option(
        "--app",
        envvar="BUCKETFN_APP",
        help="The app to load, as module:attribute.",
        show_default=True,
    ),
]
APP_ARGUMENT = Annotated[
    str,
    typer.Argument(
        envvar="BUCKETFN_APP", help="The app to load, as module:attribute.", show_default=True
    ),
]
JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root command read once for this invocation."""
    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):  # pragma: no cover - the root callback sets it
        raise TypeError("settings were not loaded")
    return settings
