"""``bucketfn dlq ls | show | replay | purge``: tables for people, ``--json`` for scripts."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from runtime.adapters.amqp import Broker
from runtime.adapters.s3 import S3Storage
from runtime.app.router import load_app
from runtime.cli import output
from runtime.cli.options import APP, JSON, settings_of
from runtime.ops.deadletters import (
    DeadLetters,
    Entry,
    Filter,
    parse_duration,
    select,
)

if TYPE_CHECKING:
    from datetime import timedelta

T = TypeVar("T")

dlq = typer.Typer(
    help="Inspect, replay and purge dead-lettered events.",
    no_args_is_help=True,
)

FUNCTION = Annotated[str | None, typer.Option(help="Only this function's entries.")]
FINGERPRINT = Annotated[
    str | None, typer.Option(help="Only entries whose fingerprint starts with this.")
]
IDS = Annotated[list[str] | None, typer.Option("--id", help="An entry id (repeatable).")]
ALL = Annotated[bool, typer.Option("--all", help="Every entry the other filters select.")]


def _with_store(
    ctx: typer.Context,
    app: str,
    work: Callable[[DeadLetters], Awaitable[T]],
    *,
    records: bool = False,
) -> T:
    """Run ``work`` on the app's dead-letter queues (and, with ``records``, the store
    holding the result records, for :meth:`DeadLetters.done`)."""
    settings = settings_of(ctx)
    application = load_app(app)

    async def go() -> T:
        async with contextlib.AsyncExitStack() as stack:
            broker = await stack.enter_async_context(Broker.connect(settings))
            storage = (
                await stack.enter_async_context(S3Storage.connect(settings)) if records else None
            )
            return await work(DeadLetters(broker, settings, application, storage))

    return asyncio.run(go())


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dlq.command("ls")
def ls(
    ctx: typer.Context,
    app: APP = "functions:app",
    function: FUNCTION = None,
    error: Annotated[
        str | None, typer.Option(help="Only entries whose error type or message contains TEXT.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries newer than e.g. 15m, 2h, 7d.")
    ] = None,
    json: JSON = False,
) -> None:
    """Counts grouped by function and fingerprint, then every entry, oldest first."""
    which = select(function=function, error=error, since=_duration(since))

    async def look(store: DeadLetters) -> tuple[list[Entry], set[str]]:
        entries = await store.entries(which)
        return entries, await store.done(entries)

    entries, done = _with_store(ctx, app, look, records=True)
    if json:
        output.emit_json([{**e.summary(), "done_since": e.id in done} for e in entries])
        return
    _render(entries, done)


def _render(entries: list[Entry], done: set[str]) -> None:
    if not entries:
        output.out.print("no dead-lettered entries")
        return
    groups = Counter((e.function or "(ingress)", e.fingerprint) for e in entries)
    sample = {(e.function or "(ingress)", e.fingerprint): e for e in entries}
    output.table(
        ["FUNCTION", "FINGERPRINT", "COUNT", "ERROR"],
        [
            [fn, fp, str(n), output.short(f"{sample[fn, fp].error_type}: {sample[fn, fp].error}")]
            for (fn, fp), n in groups.most_common()
        ],
    )
    output.out.print()
    _entries(entries, done)
    if done:
        output.out.print(
            f"{_plural(len(done))} marked DONE SINCE: the revision has a successful result "
            "by now, so a replay changes nothing (`bucketfn dlq purge --done --all --yes`)",
            markup=False,
            highlight=False,
        )


def _entries(entries: list[Entry], done: set[str] | None = None) -> None:
    headers = ["ID", "FUNCTION", "DEAD-LETTERED", "ATTEMPTS", "OBJECT", "REASON"]
    rows = [
        [
            e.id,
            e.function or "(ingress)",
            e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "-",
            str(e.attempts),
            output.short(f"{e.bucket}/{e.key}" if e.key else "-", 50),
            output.short(e.reason, 50),
        ]
        for e in entries
    ]
    if done is not None:
        headers.append("DONE SINCE")
        for row, e in zip(rows, entries, strict=True):
            row.append("yes" if e.id in done else "-")
    output.table(headers, rows)


@dlq.command()
def show(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="The entry's id (from `ls`).")],
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """One entry in full: its event, every attempt, the traceback."""
    found = _with_store(ctx, app, lambda store: store.entries(select([entry_id])))
    if not found:
        output.err.print(f"bucketfn: no dead-letter entry {entry_id!r}")
        raise typer.Exit(1)
    entry = found[0]
    if json:
        output.emit_json({**entry.summary(), "record": entry.record})
        return
    for k, v in entry.summary().items():
        output.out.print(f"{k:12} {v}", markup=False, highlight=False)
    inv = entry.invocation
    for a in inv.history if inv else ():
        then = f"next try in {a.delay_ms} ms" if a.delay_ms else "no retry"
        output.out.print(
            f"attempt {a.attempt} at {a.at.isoformat()}: {a.error_type}: "
            f"{output.short(a.message, 80)} ({then})",
            markup=False,
            highlight=False,
        )
    tb = entry.record.get("error", {}).get("traceback") if entry.kind == "dead-letter" else None
    if tb:
        output.out.print("\n" + tb, markup=False, highlight=False)


def _which(
    ids: list[str] | None, every: bool, function: str | None, fingerprint: str | None
) -> Filter:
    if bool(ids) == every:
        raise typer.BadParameter("name entries with --id ID (repeatable) or select them with --all")
    return select(ids or [], function=function, fingerprint=fingerprint)


def _plural(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


@dlq.command()
def replay(
    ctx: typer.Context,
    ids: IDS = None,
    every: ALL = False,
    function: FUNCTION = None,
    fingerprint: FINGERPRINT = None,
    dry_run: Annotated[
        bool, typer.Option(help="List what would be replayed; change nothing.")
    ] = False,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Send entries back to their function, with a fresh retry budget and their history kept."""
    which = _which(ids, every, function, fingerprint)
    with output.progress("replaying") as update:
        report = _with_store(
            ctx, app, lambda store: store.replay(which, dry_run=dry_run, progress=update)
        )
    if json:
        output.emit_json(
            {"replayed": report.replayed, "skipped": report.skipped, "dry_run": dry_run}
        )
    else:
        verb = "would replay" if dry_run else "replayed"
        output.out.print(f"{verb} {_plural(len(report.replayed))}")
        if report.entries:
            _entries(report.entries)
        for ident, why in report.skipped.items():
            output.out.print(f"skipped {ident}: {why}", markup=False)
    if report.skipped:
        raise typer.Exit(1)


@dlq.command()
def purge(
    ctx: typer.Context,
    ids: IDS = None,
    every: ALL = False,
    function: FUNCTION = None,
    fingerprint: FINGERPRINT = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: entries are deleted for good.")
    ] = False,
    done: Annotated[
        bool,
        typer.Option("--done", help="Only entries whose revision has a successful result by now."),
    ] = False,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Delete entries for good (needs --yes)."""
    which = _which(ids, every, function, fingerprint)
    if not yes:
        raise typer.BadParameter("purging deletes entries for good: add --yes to confirm")
    gone = _with_store(ctx, app, lambda store: store.purge(which, done_only=done), records=done)
    if json:
        output.emit_json({"purged": gone})
    else:
        output.out.print(f"purged {_plural(len(gone))}")
