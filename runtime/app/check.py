"""``bucketfn routes check``: what in the routes is likely a mistake.

Static checks need only the code:

- **overlap**: two functions run on some of the same objects (fan-out) and
  neither declares it (``overlaps=``); fan-out is a feature, so only an
  undeclared one is a problem;
- **cycle**: a function's outputs trigger another whose outputs trigger the
  first again (A → B → A); the loop guard stops only a function re-running on
  its *own* outputs, so a cycle runs for ever;
- **self-trigger**: what ``bucketfn init`` refuses (a function triggered by its
  own output prefix or by a bucket it writes to).

What a server holds right now is compared in :mod:`runtime.app.drift`.

A route whose prefix lies inside another's on the same bucket has no rule of
its own (S3 refuses overlapping rules); that it shares the other's is a note.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from runtime.app.rules import covering_prefixes
from runtime.core.events import MULTIPART, PUT

if TYPE_CHECKING:
    from runtime.app.router import App, Route

Kind = Literal[
    "overlap",
    "cycle",
    "self-trigger",
    "unknown-overlap",
    "drift",
    "shadowed",
    "stale-rule",
    "missing-bucket",
    "fan-out",
    "shares-rule",
    "chain",
]
WRITES = frozenset({PUT, MULTIPART})
"""The events a function's own writes raise (one PUT, or one multipart upload)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing ``routes check`` says; ``problem`` ones make it exit non-zero."""

    kind: Kind
    problem: bool
    functions: tuple[str, ...]
    message: str
    bucket: str | None = None
    example: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """``source``'s outputs land where ``target`` triggers (``bucket/prefix``)."""

    source: str
    target: str
    bucket: str
    prefix: str


def _meet(a: str, b: str) -> str | None:
    """The longer of two prefixes when one contains the other (keys can match both)."""
    if a.startswith(b):
        return a
    if b.startswith(a):
        return b
    return None


def _common_suffix(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """A suffix a key can end with and match both suffix lists; None if none can."""
    if not a or not b:
        return (a or b or ("",))[0]
    for x in a:
        for y in b:
            if x.endswith(y) or y.endswith(x):
                return max(x, y, key=len)
    return None


def overlap(a: Route, b: Route) -> str | None:
    """An example key both routes would run on (for one shared event), or None."""
    if a.bucket != b.bucket or not a.events & b.events:
        return None
    prefix = _meet(a.prefix, b.prefix)
    suffix = _common_suffix(a.suffixes, b.suffixes)
    if prefix is None or suffix is None:
        return None
    return f"{prefix}example{suffix}"


def outputs(route: Route, output_bucket: str) -> list[tuple[str, str]]:
    """Where ``route`` writes: its own output prefix, and every bucket it names."""
    return [(output_bucket, f"{route.name}/"), *((b, "") for b in route.writes_to)]


def self_trigger(route: Route, output_bucket: str) -> str | None:
    """Why ``init`` refuses ``route`` as triggering itself (as ``App.check`` does), if so."""
    own = f"{route.name}/"
    if route.bucket == output_bucket and _meet(own, route.prefix) is not None:
        return f"triggers on {output_bucket}/{route.prefix}, which holds its own outputs ({own})"
    if route.bucket in route.writes_to:
        return f"writes to {route.bucket!r}, the bucket that triggers it"
    return None


def edges(app: App, output_bucket: str) -> list[Edge]:
    """Every pair of distinct routes where the first's outputs can trigger the second."""
    found: list[Edge] = []
    for source in app.routes:
        for bucket, prefix in outputs(source, output_bucket):
            for target in app.routes:
                where = _meet(prefix, target.prefix)
                if (
                    target is not source
                    and target.bucket == bucket
                    and where is not None
                    and target.events & WRITES
                ):
                    found.append(
                        Edge(source=source.name, target=target.name, bucket=bucket, prefix=where)
                    )
    return list(dict.fromkeys(found))


def cycles(names: Iterable[str], links: Iterable[Edge]) -> list[list[str]]:
    """One cycle per strongly connected group of two or more functions (``[a, b, a]``)."""
    order = list(dict.fromkeys(names))
    graph: dict[str, list[str]] = defaultdict(list)
    for e in links:
        graph[e.source].append(e.target)
    found: list[list[str]] = []
    for group in _components(order, graph):
        if len(group) < 2:
            continue
        start = min(group, key=order.index)
        found.append(_cycle_through(start, graph, group))
    return found


def _components(order: list[str], graph: Mapping[str, list[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in order:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.get(child, ()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def _cycle_through(start: str, graph: Mapping[str, list[str]], group: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``group`` (breadth first)."""
    came: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph.get(node, ()):
            if nxt not in group:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return [*reversed(path), start]
            if nxt not in came:
                came[nxt] = node
                queue.append(nxt)
    raise AssertionError("a strongly connected group always has a cycle")  # pragma: no cover


def static_findings(app: App, output_bucket: str) -> list[Finding]:
    """What the code alone shows: overlaps, cycles, self-triggers, and notes."""
    found: list[Finding] = []
    for route in app.routes:
        why = self_trigger(route, output_bucket)
        if why:
            found.append(
                Finding(kind="self-trigger", problem=True, functions=(route.name,), message=why)
            )
        for other in route.overlaps:
            if other not in app.by_name:
                found.append(
                    Finding(
                        kind="unknown-overlap",
                        problem=True,
                        functions=(route.name,),
                        message=f"declares overlaps={other!r}, but no function has that name",
                    )
                )
    found += _overlaps(app)
    links = edges(app, output_bucket)
    for cycle in cycles((r.name for r in app.routes), links):
        found.append(
            Finding(
                kind="cycle",
                problem=True,
                functions=tuple(cycle[:-1]),
                message=f"{' → '.join(cycle)}: each one's outputs trigger the next, for ever",
            )
        )
    found += [
        Finding(
            kind="chain",
            problem=False,
            functions=(e.source, e.target),
            bucket=e.bucket,
            message=f"{e.source}'s outputs can trigger {e.target} ({e.bucket}/{e.prefix}*)",
        )
        for e in links
    ]
    found += _shared_rules(app)
    return found


def _overlaps(app: App) -> list[Finding]:
    found: list[Finding] = []
    by_bucket: dict[str, list[Route]] = defaultdict(list)
    for route in app.routes:
        by_bucket[route.bucket].append(route)
    for bucket, routes in by_bucket.items():
        for i, a in enumerate(routes):
            for b in routes[i + 1 :]:
                example = overlap(a, b)
                if example is None:
                    continue
                declared = b.name in a.overlaps or a.name in b.overlaps
                found.append(
                    Finding(
                        kind="fan-out" if declared else "overlap",
                        problem=not declared,
                        functions=(a.name, b.name),
                        bucket=bucket,
                        example=example,
                        message=(
                            f"both run on {bucket}/{example}"
                            + ("" if declared else f" (if intended, declare overlaps={b.name!r})")
                        ),
                    )
                )
    return found


def _shared_rules(app: App) -> list[Finding]:
    found: list[Finding] = []
    prefixes: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        prefixes[route.bucket].add(route.prefix)
    for route in app.routes:
        covering = covering_prefixes(prefixes[route.bucket])
        if route.prefix in covering:
            continue
        rule = next(p for p in covering if route.prefix.startswith(p))
        found.append(
            Finding(
                kind="shares-rule",
                problem=False,
                functions=(route.name,),
                bucket=route.bucket,
                message=(
                    f"{route.bucket}/{route.prefix}* has no notification rule of its own: "
                    f"the rule for {route.bucket}/{rule}* delivers its events"
                ),
            )
        )
    return found
