"""``bucketfn routes explain``: which functions an object would run, and why not the others.

Pure: the same predicate as :meth:`Route.matches`, taken apart so that a route
that does not run says the first thing that stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from runtime.core.events import PUT

if TYPE_CHECKING:
    from runtime.app.router import App, Route

Check = Literal["bucket", "prefix", "suffix", "event", "loop"]
"""What a route tests, in the order :func:`verdict` reports the first that fails."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One route's answer for one object: runs, or the first reason it does not."""

    function: str
    runs: bool
    check: Check | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Every route's verdict for ``bucket/key`` on ``event``."""

    bucket: str
    key: str
    event: str
    written_by: str | None
    verdicts: tuple[Verdict, ...]

    @property
    def runs(self) -> list[str]:
        """The functions that would run, in declaration order (one event can fan out)."""
        return [v.function for v in self.verdicts if v.runs]


def verdict(route: Route, bucket: str, key: str, event: str, written_by: str | None) -> Verdict:
    """Whether ``route`` runs on the object, else the first check it fails."""
    name = route.name
    if bucket != route.bucket:
        return Verdict(
            function=name, runs=False, check="bucket", reason=f"triggers on {route.bucket!r}"
        )
    if not key.startswith(route.prefix):
        return Verdict(
            function=name,
            runs=False,
            check="prefix",
            reason=f"key does not start with {route.prefix!r}",
        )
    if route.suffixes and not key.endswith(route.suffixes):
        return Verdict(
            function=name,
            runs=False,
            check="suffix",
            reason=f"key does not end with {' or '.join(map(repr, route.suffixes))}",
        )
    if event not in route.events:
        return Verdict(
            function=name,
            runs=False,
            check="event",
            reason=f"{event} is not one of {', '.join(sorted(route.events))}",
        )
    if written_by == name:
        return Verdict(
            function=name,
            runs=False,
            check="loop",
            reason=f"written by {name} itself: what a function writes never runs it again",
        )
    return Verdict(function=name, runs=True)


def writer_of(app: App, bucket: str, key: str, output_bucket: str) -> str | None:
    """The function that wrote ``key``, when its location says so.

    Everything under ``<output bucket>/<function>/`` is that function's record
    or a file it wrote beside it, and carries its name in the object's metadata.
    """
    if bucket != output_bucket:
        return None
    head = key.partition("/")[0]
    return head if head in app.by_name else None


def explain(
    app: App,
    bucket: str,
    key: str,
    *,
    event: str = PUT,
    written_by: str | None = None,
    output_bucket: str = "job-outputs",
) -> Explanation:
    """Each route's verdict for an ``event`` on ``bucket/key``.

    ``written_by`` is the function that wrote the object (its ``bucketfn-function``
    metadata), if any; without it, it is inferred from an output-bucket key.
    """
    writer = written_by or writer_of(app, bucket, key, output_bucket)
    return Explanation(
        bucket=bucket,
        key=key,
        event=event,
        written_by=writer,
        verdicts=tuple(verdict(r, bucket, key, event, writer) for r in app.routes),
    )


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key); the key as stored, not URL-encoded."""
    rest = url.removeprefix("s3://")
    bucket, sep, key = rest.partition("/")
    if rest == url or not bucket or not sep or not key:
        raise ValueError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key
