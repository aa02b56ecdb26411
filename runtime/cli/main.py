"""The ``bucketfn`` command: load settings once, configure logs, run one command."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
import uvloop

from runtime.app.router import load_app
from runtime.cli import api, backfill, backup, new, output, routes, status
from runtime.cli.dlq import dlq
from runtime.cli.options import APP_ARGUMENT, JSON, settings_of
from runtime.core import logs
from runtime.core.errors import BucketfnError
from runtime.core.settings import load
from runtime.engine import process
from runtime.engine.feed import Feed
from runtime.engine.health import Health
from runtime.http import Metrics, QueueStats, running
from runtime.ops import provision
from runtime.ops.sweep import sweeping

if TYPE_CHECKING:
    from runtime.core.settings import Settings

cli = typer.Typer(
    name="bucketfn",
    help=(
        "Run Python functions on every object that lands in an S3-compatible bucket.\n\n"
        "Start with `bucketfn init` (buckets, notification rules, queues), then "
        "`bucketfn run`. Settings come from BUCKETFN_* environment variables."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli.add_typer(dlq, name="dlq")
for _group in (api, backfill, backup, new, routes, status):
    _group.register(cli)


@cli.callback()
def _root(ctx: typer.Context) -> None:
    settings = load()
    logs.configure(settings.log_level, settings.log_format)
    ctx.obj = settings


@cli.command()
def run(
    ctx: typer.Context,
    app: APP_ARGUMENT = "functions:app",
    function: Annotated[
        list[str] | None,
        typer.Option("--function", help="Run only this function's worker (repeatable)."),
    ] = None,
    no_dispatcher: Annotated[
        bool, typer.Option("--no-dispatcher", help="Do not consume the ingress queue.")
    ] = False,
    dispatcher_only: Annotated[
        bool, typer.Option("--dispatcher-only", help="Run the dispatcher and no workers.")
    ] = False,
) -> None:
    """Run the dispatcher and the functions' workers until SIGTERM or Ctrl-C.

    Metrics and health are served on BUCKETFN_METRICS_ADDRESS meanwhile.
    """
    settings = settings_of(ctx)
    application = load_app(app)
    functions = set() if dispatcher_only else set(function or []) or None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        health = Health()
        metrics = Metrics(r.name for r in application.routes)
        queues = QueueStats(settings, application, registry=metrics.registry)
        feed = Feed(settings)  # what `bucketfn watch` shows
        async with running(settings, metrics, health, queues=queues), feed.publishing():
            await asyncio.gather(
                process.serve(
                    application,
                    settings,
                    stop,
                    functions=functions,
                    dispatcher=not no_dispatcher,
                    observers=(metrics, feed),
                    health=health,
                ),
                # Every process takes part; one at a time holds the sweep's token.
                sweeping(application, settings, stop, observer=metrics),
            )

    if settings.event_loop == "uvloop":
        # uvloop does the AMQP and HTTP socket work in C (measured in README).
        uvloop.run(serve())
    else:
        asyncio.run(serve())


@cli.command()
def init(ctx: typer.Context, app: APP_ARGUMENT = "functions:app", json: JSON = False) -> None:
    """Create buckets, notification rules and queues for the app (idempotent)."""
    report = asyncio.run(provision.init(load_app(app), settings_of(ctx)))
    if json:
        output.emit_json(report)
        return
    created = ", ".join(report["created_buckets"]) or "none (all existed)"
    changed = ", ".join(report["notifications_changed"]) or "none (already in place)"
    output.out.print(f"buckets created: {created}", markup=False)
    output.out.print(f"notification rules changed: {changed}", markup=False)
    if report["polling"]:
        settings = settings_of(ctx)
        output.out.print(
            f"polling mode: the store has no bucket notifications ({', '.join(report['polling'])});"
            f" the sweep finds new objects by listing, every {settings.sweep_interval:g} s"
            f" (BUCKETFN_SWEEP_INTERVAL), once older than {settings.sweep_grace:g} s"
            " (BUCKETFN_SWEEP_GRACE)",
            markup=False,
        )
    lifecycle = ", ".join(report["lifecycle_changed"]) or "none (already in place)"
    output.out.print(f"lifecycle rules changed: {lifecycle}", markup=False)
    output.out.print("queues declared: ok")
    broker = report["broker"]
    policy = "set" if broker["policy_changed"] else "already in place"
    users = ", ".join(broker["identities_changed"]) or "none"
    output.out.print(
        f"alternate-exchange policy: {policy}; broker users changed: {users}", markup=False
    )
    output.out.print(minio_line(report["minio"], settings_of(ctx)), markup=False)


def minio_line(minio: dict[str, Any], settings: Settings) -> str:
    """``init``'s MinIO part in words: the deployment's target and the identities it keeps."""
    if minio.get("admin_api") is False:
        return "MinIO admin API: not available; notification target and users left alone"
    target = "added (MinIO restarted)" if minio["target_added"] else "already loaded"
    users = ", ".join(minio["identities_changed"]) or "none"
    return (
        f"notification target {settings.minio_target_arn}: {target}; MinIO users changed: {users}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bucketfn`` console command."""

    def invoke() -> int:
        try:
            code = cli(args=list(argv) if argv is not None else None, standalone_mode=False)
        except BucketfnError as exc:
            output.err.print(f"bucketfn: {exc}", markup=False, highlight=False)
            return 2
        except typer.Exit as exc:
            return exc.exit_code
        except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
            return 130
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except typer.TyperException as exc:
            # typer carries its own copy of click: its usage errors are not click's.
            show = getattr(exc, "show", None)
            if show is None:
                raise
            show()
            return int(getattr(exc, "exit_code", 2))
        return code if isinstance(code, int) else 0

    return output.survive_closed_pipe(invoke)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
