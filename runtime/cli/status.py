"""``bucketfn status``: one screen on a deployment, ``--json`` for scripts (and ``watch``'s home).

What is read, and why it consumes and reorders nothing, is in
:mod:`runtime.ops.status`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from runtime.app.router import load_app
from runtime.cli import output, watch
from runtime.cli.options import APP, JSON, settings_of
from runtime.ops.status import READ, Report, Row, age, gather

if TYPE_CHECKING:
    from runtime.ops.status import Letters


def register(cli: typer.Typer) -> None:
    """Add ``status`` and ``watch`` to the root command."""
    cli.command()(status)
    watch.register(cli)


def status(
    ctx: typer.Context,
    app: APP = "functions:app",
    read: Annotated[
        int,
        typer.Option(
            min=0,
            help="Read a dead-letter queue for its oldest entry and last error only if it "
            "holds at most this many (all are given back, in order).",
        ),
    ] = READ,
    json: JSON = False,
) -> None:
    """Servers reachable; per function: queued, consumers, in flight, retrying, dead letters.

    In flight is what the runtime at BUCKETFN_METRICS_ADDRESS reports. Exits 1
    when RabbitMQ or S3 does not answer or a queue is missing (`bucketfn init`).
    """
    report = asyncio.run(gather(settings_of(ctx), load_app(app), read=read))
    if json:
        output.emit_json(report.summary())
    else:
        render(report)
    if not report.ok:
        raise typer.Exit(1)


def render(report: Report) -> None:
    """The report for a person: servers, then one line per consumer of the deployment."""
    output.table(
        ["SERVER", "ADDRESS", "STATE"],
        [[escape(s.name), escape(s.address), escape(s.detail)] for s in report.servers],
    )
    if not report.rows:
        return
    output.out.print()
    output.table(
        ["FUNCTION", "QUEUED", "CONSUMERS", "IN FLIGHT", "RETRYING", "DLQ", "OLDEST", "LAST ERROR"],
        [_cells(report, r) for r in report.rows],
    )
    missing = [name for r in report.rows for name in r.missing]
    if missing:
        output.out.print()
        output.out.print(
            f"{len(missing)} queues of this deployment do not exist, e.g. {missing[0]}: "
            "run `bucketfn init` (`--json` lists them all)",
            markup=False,
            highlight=False,
        )


def _cells(report: Report, row: Row) -> list[str]:
    d, dl = row.depth, row.letters
    name = row.function or "(dispatcher)"
    if not row.known:  # RabbitMQ did not answer
        cells = [name, "?", "?", _or_dash(row.inflight), "?", "?", "?", "?"]
    else:
        cells = [
            name,
            "missing" if d is None else str(d.messages),
            "-" if d is None else str(d.consumers),
            _or_dash(row.inflight),
            _or_dash(row.retrying),
            "missing" if dl is None else str(dl.count),
            _oldest(report, dl) if dl else "-",
            _last_error(report, dl) if dl else "-",
        ]
    # rich reads markup in table cells; error messages and keys are not markup.
    return [escape(c) for c in cells]


def _or_dash(n: int | None) -> str:
    return "-" if n is None else str(n)


def _oldest(report: Report, dl: Letters) -> str:
    if dl.count and not dl.read:
        return "?"
    return _ago(age(report.at, dl.oldest))


def _last_error(report: Report, dl: Letters) -> str:
    if dl.count and not dl.read:
        return "not read: more entries than --read (see `bucketfn dlq ls`)"
    e = dl.last
    if e is None:
        return "-"
    kind = (e.error_type or e.kind).rsplit(".", 1)[-1]  # the class, not its module path
    text = output.short(f"{kind}: {e.error or e.reason}", 60)
    when = _ago(age(report.at, e.at))
    return f"{text} ({when} ago)" if when != "-" else text


def _ago(seconds: float | None) -> str:
    """``45s``, ``12m``, ``5h``, ``3d``: how old, at a glance."""
    if seconds is None:
        return "-"
    for unit, size, up_to in (("s", 1, 90), ("m", 60, 90 * 60), ("h", 3600, 36 * 3600)):
        if seconds < up_to:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds // 86400)}d"
