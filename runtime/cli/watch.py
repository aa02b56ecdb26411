"""``bucketfn watch``: each event as it is routed and each result as it lands, until Ctrl-C.

A live table on a terminal; one plain line per note when piped; one JSON
object per line with ``--json``. It reads the runtime's feed
(:mod:`runtime.engine.feed`) through a queue of its own that is gone when it
ends (:mod:`runtime.ops.feed`), so it consumes nothing the runtime needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import Counter, deque
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runtime.cli import output
from runtime.cli.options import JSON, settings_of
from runtime.ops.feed import follow

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.core.settings import Settings
    from runtime.engine.feed import Batch, Note

COLUMNS = ("TIME", "FUNCTION", "OBJECT", "OUTCOME", "DURATION", "DETAIL")
STYLES = {
    "ok": "green",
    "routed": "cyan",
    "retry": "yellow",
    "dead-letter": "bold red",
    "rejected": "bold red",
    "duplicate": "dim",
    "superseded": "dim",
    "unmatched": "dim",
}


def register(cli: typer.Typer) -> None:
    """Add ``watch`` to the root command."""
    cli.command()(watch)


def watch(
    ctx: typer.Context,
    function: Annotated[
        list[str] | None,
        typer.Option("--function", help="Only notes about this function (repeatable)."),
    ] = None,
    json: JSON = False,
) -> None:
    """Show events as they are routed and results as they land, until Ctrl-C.

    Needs a runtime started with the feed on; shows nothing while none runs.
    With --json: one note per line, and a line of kind "dropped" when a runtime
    had to drop notes.
    """
    settings = settings_of(ctx)
    wanted = set(function or ())
    if json or not output.out.is_terminal:
        view = View(wanted)
        show = _json_lines(view) if json else _plain_lines(view)
        asyncio.run(_follow(settings, view, show))
    else:
        view = View(wanted, keep=max(output.out.size.height - 6, 5))  # what fits on screen
        with Live(view.render(), console=output.out, auto_refresh=False) as live:
            asyncio.run(_follow(settings, view, view.add, live=live))
    output.err.print(f"watched {view.shown} notes", markup=False, highlight=False)


class View:
    """What ``watch`` knows: the latest notes, counts by outcome, the link, notes lost."""

    def __init__(self, functions: set[str], keep: int = 200) -> None:
        self.functions = functions
        self.rows: deque[Note] = deque(maxlen=keep)
        self.counts: Counter[str] = Counter()
        self.dropped = 0
        self.shown = 0
        self.link = "connecting to RabbitMQ…"
        self.dirty = True

    def wanted(self, note: Note) -> bool:
        """Whether ``--function`` lets this note through."""
        if not self.functions:
            return True
        return note.function in self.functions or bool(self.functions & set(note.functions))

    def add(self, batch: Batch) -> list[Note]:
        """Take a batch in; returns the notes to show."""
        self.dropped += batch.dropped
        notes = [n for n in batch.notes if self.wanted(n)]
        self.rows.extend(notes)
        self.counts.update(_outcome(n) for n in notes)
        self.shown += len(notes)
        self.dirty = True
        return notes

    def render(self) -> Group:
        """The live screen: a status line, then the latest notes, newest last."""
        self.dirty = False
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing yet"
        head = Text(f"{self.link} · {counts}", style="bold")
        if self.dropped:
            head.append(f" · {self.dropped} notes dropped by runtimes", style="yellow")
        table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
        for name in COLUMNS:  # one line per note, so the screen never jumps
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        for note in self.rows:
            cells = [Text(c) for c in cells_of(note)]
            cells[3].stylize(STYLES.get(_outcome(note), ""))
            table.add_row(*cells)
        return Group(head, table)


def cells_of(note: Note) -> list[str]:
    """One note as the columns' plain text."""
    if note.kind == "routed":
        who = ", ".join(note.functions)
    elif note.kind == "unmatched":
        who = "-"
    else:
        who = note.function or "(ingress)"
    obj = f"{note.bucket}/{note.key}" if note.key is not None else "-"
    took = f"{note.seconds * 1000:.1f} ms" if note.seconds is not None else ""
    detail = note.error or ""
    if note.attempt and note.attempt > 1:
        detail = f"attempt {note.attempt}" + (f": {detail}" if detail else "")
    if note.letter_id:
        detail += f" (dlq id {note.letter_id})"
    when = note.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    return [when, who, obj, _outcome(note), took, output.short(detail.strip(), 80)]


def _outcome(note: Note) -> str:
    return note.outcome if note.kind == "finished" and note.outcome else note.kind


def _plain_lines(view: View) -> Callable[[Batch], None]:
    def show(batch: Batch) -> None:
        for note in view.add(batch):
            line = "  ".join(c for c in cells_of(note) if c)
            output.out.print(line, markup=False, highlight=False)
        if batch.dropped:
            output.err.print(f"{batch.source} dropped {batch.dropped} notes", markup=False)

    return show


def _json_lines(view: View) -> Callable[[Batch], None]:
    def show(batch: Batch) -> None:
        lines = [
            orjson.dumps({"source": batch.source, **n.model_dump(mode="json")})
            for n in view.add(batch)
        ]
        if batch.dropped:
            dropped = {"kind": "dropped", "source": batch.source, "dropped": batch.dropped}
            lines.append(orjson.dumps(dropped))
        if lines:
            sys.stdout.write(b"\n".join(lines).decode() + "\n")
            sys.stdout.flush()

    return show


async def _follow(
    settings: Settings, view: View, show: Callable[[Batch], object], live: Live | None = None
) -> None:
    """Follow the feed until SIGINT/SIGTERM; what ``show`` raises (a closed pipe) ends it too."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def linked(queue: str) -> None:
        view.link = f"watching {settings.queues.feed}"
        view.dirty = True
        if live is None:
            output.err.print(f"{view.link} (queue {queue}); Ctrl-C to stop", markup=False)

    def lost(error: str) -> None:
        view.link = f"reconnecting: {error}"
        view.dirty = True
        if live is None:
            output.err.print(view.link, markup=False, highlight=False)

    following = asyncio.create_task(follow(settings, show, on_link=linked, on_lost=lost))
    stopping = asyncio.create_task(stop.wait())
    try:
        while not (stopping.done() or following.done()):
            await asyncio.wait({following, stopping}, timeout=0.25)
            if live is not None and view.dirty:
                live.update(view.render(), refresh=True)
    finally:
        for task in (following, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following  # leaves the feed: its queue is deleted
