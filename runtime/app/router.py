"""Routes: which function runs for which object event.

Routes declared in code are the single source of truth: ``bucketfn init``
derives MinIO's notification rules and the RabbitMQ topology from them, and
the router matches events against them.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from runtime.core import names
from runtime.core.errors import ConfigError
from runtime.core.events import DATA_EVENTS, ObjectEvent
from runtime.core.names import Meta
from runtime.core.retry import RetryPolicy

if TYPE_CHECKING:
    from runtime.app.context import Context

Handler: TypeAlias = Callable[[ObjectEvent, "Context"], Awaitable[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One function and the events it runs on."""

    name: str
    handler: Handler
    bucket: str
    prefix: str = ""
    suffixes: tuple[str, ...] = ()
    events: frozenset[str] = DATA_EVENTS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    version: str = ""
    writes_to: tuple[str, ...] = ()
    overlaps: tuple[str, ...] = ()

    def matches(self, event: ObjectEvent) -> bool:
        """Whether ``event`` should run this function."""
        return (
            event.bucket == self.bucket
            and event.event_name in self.events
            and event.key.startswith(self.prefix)
            and (not self.suffixes or event.key.endswith(self.suffixes))
            # The loop guard: what a function wrote never runs that function again.
            and event.metadata.get(Meta.FUNCTION) != self.name
        )


class Router:
    """A module's functions. Collect routers into an :class:`App`."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def function(
        self,
        *,
        bucket: str,
        prefix: str = "",
        suffix: str | Iterable[str] = (),
        events: Iterable[str] = DATA_EVENTS,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        version: str | None = None,
        writes_to: Iterable[str] = (),
        overlaps: Iterable[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Register an ``async def f(event, ctx)`` to run on matching object events.

        Options are validated here, at import, so a typo fails the deploy rather
        than the first event. The handler is returned unchanged: tests can await it.
        ``writes_to`` names the buckets the function writes besides its own
        output prefix (e.g. the next lake layer), for the loop check in ``init``.
        ``overlaps`` names functions that run on some of the same objects on
        purpose (fan-out); ``bucketfn routes check`` reports every other overlap.
        """
        suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
        suffixes = tuple(s for s in suffixes if s)
        event_set = frozenset(events)
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid bucket {bucket!r}")
        unknown = {e for e in event_set if not e.startswith("s3:") or "*" in e}
        if unknown or not event_set:
            raise ConfigError(
                f"events must be explicit 's3:...' names (no wildcards), got {sorted(unknown)}"
            )

        def register(handler: Handler) -> Handler:
            fname = name or handler.__name__
            if not inspect.iscoroutinefunction(handler):
                raise ConfigError(f"function {fname!r} must be 'async def'")
            if not names.valid_function_name(fname):
                raise ConfigError(
                    f"function name {fname!r} must match [a-z][a-z0-9_]* (max 63 chars) "
                    f"and not be one of {sorted(names.RESERVED_NAMES)}"
                )
            self.routes.append(
                Route(
                    name=fname,
                    handler=handler,
                    bucket=bucket,
                    prefix=prefix,
                    suffixes=suffixes,
                    events=event_set,
                    retry=retry or RetryPolicy(),
                    version=version or _source_version(handler),
                    writes_to=tuple(writes_to),
                    overlaps=tuple(overlaps),
                )
            )
            return handler

        return register


def _source_version(handler: Handler) -> str:
    # The code's own hash: a DLQ entry then says which code failed, with no
    # version bump for the user to forget.
    try:
        source = inspect.getsource(handler)
    except (OSError, TypeError):
        return "unknown"
    return hashlib.sha256(source.encode()).hexdigest()[:12]


class App:
    """The deployed set of functions, named explicitly (no global registry).

    ``versioned`` names the buckets that need S3 versioning (so a stale event
    reads its own version, not the newest): the app knows its data, the
    runtime does not.
    """

    def __init__(self, routers: Iterable[Router], *, versioned: Iterable[str] = ()) -> None:
        self.routes: tuple[Route, ...] = tuple(r for router in routers for r in router.routes)
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ConfigError(f"two functions are named {route.name!r}")
            seen.add(route.name)
        self.by_name: Mapping[str, Route] = {r.name: r for r in self.routes}
        self.versioned: frozenset[str] = frozenset(versioned)

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every bucket the routes trigger on or write to, in declaration order."""
        found = [b for r in self.routes for b in (r.bucket, *r.writes_to)]
        return tuple(dict.fromkeys([*found, *sorted(self.versioned)]))

    def match(self, event: ObjectEvent) -> list[Route]:
        """Every route ``event`` should run (an event can fan out)."""
        return [r for r in self.routes if r.matches(event)]

    def check(self, output_bucket: str) -> None:
        """Refuse routes whose outputs would trigger themselves (``bucketfn init``)."""
        for route in self.routes:
            own = f"{route.name}/"  # every output key of the function starts here
            if route.bucket == output_bucket and (
                own.startswith(route.prefix) or route.prefix.startswith(own)
            ):
                raise ConfigError(
                    f"function {route.name!r} triggers on {output_bucket}/{route.prefix!s}, "
                    f"which contains its own outputs ({own}): it would trigger itself"
                )
            if route.bucket in route.writes_to:
                raise ConfigError(
                    f"function {route.name!r} writes to {route.bucket!r}, the bucket that "
                    "triggers it: it would trigger itself"
                )


def load_app(spec: str) -> App:
    """Load ``module:attribute`` (e.g. ``functions:app``) — the CLI's import string."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise ConfigError(f"{spec!r} is not a runtime.App")
    return app
