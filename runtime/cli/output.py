"""How the CLI speaks: rich tables for people, JSON for scripts, quiet on a closed pipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table


class _Console(Console):
    """rich's console, leaving a closed pipe to :func:`survive_closed_pipe` (one exit path)."""

    def on_broken_pipe(self) -> None:
        """Stop writing, and let the command end as every other closed pipe does."""
        self.quiet = True
        raise BrokenPipeError


# Piped output is read by scripts and tests: never truncate or wrap it to 80 columns.
out = _Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = _Console(stderr=True)


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (``--json``)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """A table of plain strings; cells never lose characters (long ones fold)."""
    t = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for name in columns:
        t.add_column(name, overflow="fold", no_wrap=name in ("ID", "FINGERPRINT"))
    for row in rows:
        t.add_row(*row)
    out.print(t)


def short(text: str | None, n: int = 60) -> str:
    """One line of at most ``n`` characters."""
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


@contextmanager
def progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (none when piped); yields ``update(done, total)``."""
    if not err.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def survive_closed_pipe(run: Callable[[], int]) -> int:
    """Run the command; a reader that went away (``| head``) ends it quietly.

    Python's own advice: point stdout at /dev/null so the interpreter's final
    flush does not raise a second time, and exit as a killed writer would.
    """
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a writer killed by it
    return code
