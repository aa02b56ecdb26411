"""``bucketfn routes``: list the routes, explain one object, check them all."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtime.adapters.s3 import S3Storage
from runtime.app.check import Finding, static_findings
from runtime.app.drift import live_findings
from runtime.app.explain import explain, parse_url
from runtime.app.router import load_app
from runtime.cli import output
from runtime.cli.options import APP, JSON, settings_of
from runtime.core.errors import ConfigError
from runtime.core.events import PUT
from runtime.core.names import Meta
from runtime.ops.provision import live_rules, managed_buckets, rule_prefix

if TYPE_CHECKING:
    from runtime.app.explain import Explanation
    from runtime.app.router import App
    from runtime.core.settings import Settings

routes = typer.Typer(
    help="The functions and what triggers them. Without a command: list them (as `routes ls`).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(cli: typer.Typer) -> None:
    """Add the ``routes`` group to the root command."""
    cli.add_typer(routes, name="routes")


@routes.callback()
def _default(ctx: typer.Context, app: APP = "functions:app", json: JSON = False) -> None:
    if ctx.invoked_subcommand is None:
        _list(settings_of(ctx), load_app(app), json=json)


@routes.command("ls")
def ls(ctx: typer.Context, app: APP = "functions:app", json: JSON = False) -> None:
    """List the functions, what triggers each, and its queue."""
    _list(settings_of(ctx), load_app(app), json=json)


def _list(settings: Settings, application: App, *, json: bool) -> None:
    queues = settings.queues
    found = application.routes
    if json:
        output.emit_json(
            [
                {
                    "function": r.name,
                    "bucket": r.bucket,
                    "prefix": r.prefix,
                    "suffixes": list(r.suffixes),
                    "events": sorted(r.events),
                    "queue": queues.function(r.name),
                    "version": r.version,
                }
                for r in found
            ]
        )
        return
    output.table(
        ["FUNCTION", "TRIGGER", "QUEUE", "VERSION"],
        [
            [
                r.name,
                f"{r.bucket}/{r.prefix}*{','.join(r.suffixes)}",
                queues.function(r.name),
                r.version,
            ]
            for r in found
        ],
    )


@routes.command("explain")
def explain_command(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The object, as s3://bucket/key.", show_default=False)],
    event: Annotated[str, typer.Option(help="The event type.")] = PUT,
    written_by: Annotated[
        str | None,
        typer.Option(help="The function that wrote the object (its bucketfn-function metadata)."),
    ] = None,
    head: Annotated[
        bool, typer.Option("--head", help="Read who wrote it from the object's metadata in S3.")
    ] = False,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Which functions an object would run, and for each other one the first reason it would not.

    Checks, in order: bucket, prefix, suffix, event type, and whether the object
    was written by that function itself (which never runs it again).
    """
    settings = settings_of(ctx)
    application = load_app(app)
    try:
        bucket, key = parse_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if not event.startswith("s3:") or "*" in event:
        raise ConfigError(f"--event: expected an explicit s3:... event, got {event!r}")
    if head and written_by is None:
        written_by = asyncio.run(_writer(settings, bucket, key))
    found = explain(
        application,
        bucket,
        key,
        event=event,
        written_by=written_by,
        output_bucket=settings.output_bucket,
    )
    if json:
        output.emit_json(_explanation_json(found))
        return
    writer = f" (written by {found.written_by})" if found.written_by else ""
    output.out.print(f"s3://{bucket}/{key} on {event}{writer}", markup=False, highlight=False)
    output.table(
        ["FUNCTION", "RUNS", "WHY NOT"],
        [
            [v.function, "yes" if v.runs else "no", f"{v.check}: {v.reason}" if v.check else ""]
            for v in found.verdicts
        ],
    )
    runs = ", ".join(found.runs) or "nothing"
    output.out.print(f"runs: {runs}", markup=False, highlight=False)


async def _writer(settings: Settings, bucket: str, key: str) -> str | None:
    async with S3Storage.connect(settings) as storage:
        info = await storage.head(bucket, key)
    if info is None:
        raise ConfigError(f"s3://{bucket}/{key} does not exist (--head reads its metadata)")
    return (info.metadata or {}).get(Meta.FUNCTION) or None


def _explanation_json(found: Explanation) -> dict[str, Any]:
    return {
        "bucket": found.bucket,
        "key": found.key,
        "event": found.event,
        "written_by": found.written_by,
        "runs": found.runs,
        "functions": [
            {"function": v.function, "runs": v.runs, "check": v.check, "reason": v.reason}
            for v in found.verdicts
        ],
    }


@routes.command("check")
def check_command(
    ctx: typer.Context,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Only the checks the code alone answers (no server: for CI lint)."
        ),
    ] = False,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Check the routes; exit 1 if anything is wrong.

    From the code: overlapping routes nobody declared (overlaps=), output →
    trigger cycles (A → B → A), functions that would trigger themselves. From
    MinIO (unless --offline): events no notification rule delivers (drift),
    routes served only by a rule this deployment does not own (shadowed),
    rules it owns that the routes no longer derive, missing buckets.
    """
    settings = settings_of(ctx)
    application = load_app(app)
    found = static_findings(application, settings.output_bucket)
    if not offline:
        found += asyncio.run(_live(application, settings))
    problems = [f for f in found if f.problem]
    if json:
        output.emit_json(
            {
                "ok": not problems,
                "server_checked": not offline,
                "routes": len(application.routes),
                "problems": [_finding_json(f) for f in problems],
                "notes": [_finding_json(f) for f in found if not f.problem],
            }
        )
    else:
        _print_findings(found, routes=len(application.routes), offline=offline)
    if problems:
        raise typer.Exit(1)


async def _live(application: App, settings: Settings) -> list[Finding]:
    async with S3Storage.connect(settings) as storage:
        live = await live_rules(storage, managed_buckets(application, settings))
    return live_findings(
        application, live, arn=settings.minio_target_arn, owner=rule_prefix(settings)
    )


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "functions": list(f.functions),
        "bucket": f.bucket,
        "example": f.example,
        "message": f.message,
    }


def _print_findings(found: list[Finding], *, routes: int, offline: bool) -> None:
    rows = sorted(found, key=lambda f: not f.problem)  # problems first, each kind in order
    if rows:
        output.table(
            ["", "KIND", "FUNCTIONS", "WHAT"],
            [
                ["problem" if f.problem else "note", f.kind, ", ".join(f.functions), f.message]
                for f in rows
            ],
        )
    problems = sum(f.problem for f in found)
    scope = "code only (--offline)" if offline else "code and server"
    verdict = f"{problems} problem{'s' * (problems != 1)}" if problems else "ok"
    output.out.print(f"{verdict}: {routes} routes checked, {scope}", markup=False, highlight=False)
