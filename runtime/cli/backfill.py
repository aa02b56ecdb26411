"""``bucketfn backfill``: run functions on the objects that are already there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, TaskID, TextColumn

from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.app.router import load_app
from runtime.cli import output
from runtime.cli.options import APP, JSON, settings_of
from runtime.ops.backfill import Scope, backfill
from runtime.ops.reconcile import Reconciler

if TYPE_CHECKING:
    from runtime.ops.reconcile import Tally


def register(cli: typer.Typer) -> None:
    """Add ``backfill`` to the root command."""
    cli.command("backfill")(backfill_command)


def backfill_command(
    ctx: typer.Context,
    app: APP = "functions:app",
    function: Annotated[str | None, typer.Option(help="Only this function.")] = None,
    bucket: Annotated[str | None, typer.Option(help="Only routes on this bucket.")] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Only objects under this prefix (within the route's).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Count what would be enqueued; send nothing.")
    ] = False,
    rate: Annotated[
        float, typer.Option(min=0, help="At most N enqueues per second (0: no limit).")
    ] = 0.0,
    json: JSON = False,
) -> None:
    """Run functions on existing objects that match their routes and have no result yet.

    Objects whose result is current are skipped; the rest go through the
    function's queue (retries, dead letters and replay apply). Interrupted, it
    continues where it stopped; run again after it finished, it enqueues nothing.
    """
    settings = settings_of(ctx)
    application = load_app(app)
    scope = Scope(function=function, bucket=bucket, prefix=prefix)
    if not any(scope.covers(r) for r in application.routes):
        raise typer.BadParameter("no route matches --function/--bucket/--prefix")

    async def go(update: Callable[[str, Tally], None]) -> dict[str, Tally]:
        async with S3Storage.connect(settings) as storage, Broker.connect(settings) as broker:
            reconciler = Reconciler(storage, broker, settings.queues, settings.output_bucket)
            return await backfill(
                list(application.routes),
                settings,
                storage,
                reconciler,
                scope=scope,
                dry_run=dry_run,
                rate=rate,
                progress=update,
            )

    if output.err.is_terminal and not json:
        with Progress(TextColumn("{task.description}"), console=output.err) as bar:
            tasks: dict[str, TaskID] = {}

            def update(name: str, t: Tally) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=None)
                verb = "would enqueue" if dry_run else "enqueued"
                bar.update(
                    tasks[name],
                    description=(
                        f"{name}: listed {t.listed:,} · done {t.done:,} · {verb} {t.enqueued:,}"
                    ),
                )

            tallies = asyncio.run(go(update))
    elif not json:
        # Not a terminal (a log, CI, a pipe): a plain line at most once a second.
        last = [0.0]

        def line(name: str, t: Tally) -> None:
            if time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                verb = "would enqueue" if dry_run else "enqueued"
                output.err.print(
                    f"{name}: listed {t.listed:,} · done {t.done:,} · {verb} {t.enqueued:,}",
                    markup=False,
                    highlight=False,
                )

        tallies = asyncio.run(go(line))
    else:
        tallies = asyncio.run(go(lambda name, t: None))
    rows = {
        name: {
            "listed": t.listed,
            "done": t.done,
            "enqueued": t.enqueued,
            "skipped": t.skipped,
            "dry_run": dry_run,
        }
        for name, t in tallies.items()
    }
    if json:
        output.emit_json(rows)
        return
    verb = "WOULD ENQUEUE" if dry_run else "ENQUEUED"
    output.table(
        ["FUNCTION", "LISTED", "ALREADY DONE", verb, "SKIPPED"],
        [
            [name, f"{r['listed']:,}", f"{r['done']:,}", f"{r['enqueued']:,}", f"{r['skipped']:,}"]
            for name, r in rows.items()
        ],
    )
