"""What the templates show, computed from the hub's state; and the templates themselves.

Pure functions over the status report, the dead-letter entries and the
recent outcomes, so that what a page says is decided here and the templates
only lay it out. Templates autoescape everything (keys are user input) and
fail loudly on a missing name rather than render a blank.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined

from runtime.core.records import now

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from runtime.app.router import App
    from runtime.http.console.hub import Letters
    from runtime.ops.deadletters import Entry
    from runtime.ops.status import Report, Row

INGRESS = "(ingress)"
OUTCOMES = ("ok", "duplicate", "superseded", "retry", "dead-letter")  # the order they are shown


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionView:
    """One function's line of the overview."""

    name: str
    bucket: str
    prefix: str
    suffixes: tuple[str, ...]
    row: Row | None  # None before the first report
    outcomes: tuple[tuple[str, int], ...]  # the last five minutes
    per_minute: int
    letters: int | None  # in its dead-letter queue; None: unknown
    oldest: datetime | None  # the oldest of them, when they were read
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Dead letters of one function and one cause, as ``bucketfn dlq ls`` groups them."""

    function: str | None
    fingerprint: str
    count: int
    sample: Entry  # the newest: its error names the cause
    oldest: datetime | None

    @property
    def label(self) -> str:
        """The function, or the ingress."""
        return self.function or INGRESS


def functions(
    app: App,
    report: Report | None,
    letters: Letters | None,
    outcomes: Callable[[str], tuple[Counter[str], int]],
) -> list[FunctionView]:
    """Every function of ``app`` with its queues, recent outcomes and dead letters."""
    rows = {r.function: r for r in report.rows} if report else {}
    entries = letters.entries if letters and letters.read else ()
    out: list[FunctionView] = []
    for route in app.routes:
        row = rows.get(route.name)
        mine = [e for e in entries if e.function == route.name]
        times = [e.at for e in mine if e.at is not None]
        window, per_minute = outcomes(route.name)
        count = row.letters.count if row and row.letters else None
        out.append(
            FunctionView(
                name=route.name,
                bucket=route.bucket,
                prefix=route.prefix,
                suffixes=route.suffixes,
                row=row,
                outcomes=ordered(window),
                per_minute=per_minute,
                letters=count,
                oldest=min(times, default=None),
                last_error=error_of(mine[-1]) if mine else None,
            )
        )
    return out


def ordered(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    """Outcome counts in the order they are shown; unknown ones last."""
    known = [(o, counts[o]) for o in OUTCOMES if counts[o]]
    return (*known, *sorted((o, n) for o, n in counts.items() if o not in OUTCOMES and n))


def groups(entries: Iterable[Entry]) -> list[Group]:
    """Entries grouped by function and fingerprint, largest group first."""
    members: dict[tuple[str | None, str], list[Entry]] = {}
    for e in entries:
        members.setdefault((e.function, e.fingerprint), []).append(e)
    found = [
        Group(
            function=function,
            fingerprint=fingerprint,
            count=len(group),
            sample=max(group, key=lambda e: e.at or now()),
            oldest=min((e.at for e in group if e.at is not None), default=None),
        )
        for (function, fingerprint), group in members.items()
    ]
    return sorted(found, key=lambda g: (-g.count, g.label, g.fingerprint))


def error_of(entry: Entry) -> str:
    """An entry's error as one line: type and message, else the reason."""
    return f"{entry.error_type}: {entry.error}" if entry.error_type else entry.reason


def ago(then: datetime | None) -> str:
    """How long ago, for a person: ``12 s``, ``3 min``, ``2 h``, ``4 d``."""
    if then is None:
        return "—"
    s = max((now() - then).total_seconds(), 0.0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit}"
    return f"{int(s)} s"


def clock(at: datetime | None) -> str:
    """``HH:MM:SS`` (UTC; the page shows it in the reader's time zone)."""
    return at.strftime("%H:%M:%S") if at else "—"


def duration(seconds: float | None) -> str:
    """``2.4 ms``, ``1.52 s``."""
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def pretty(value: Any) -> str:
    """JSON, indented for reading."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def templates() -> Environment:
    """The console's templates, from the package (they ship as package data)."""
    env = Environment(
        loader=PackageLoader("runtime.http.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, clock=clock, duration=duration, pretty=pretty, error=error_of)
    return env
