"""The live half of ``bucketfn routes check``: the routes against a server's rules now.

What a server holds is read by ``runtime.ops.provision.live_rules``; this
compares, without I/O:

- **drift**: an event a route wants that no rule delivers to the deployment's
  target (the code changed and ``init`` did not run, or a rule was removed);
- **shadowed**: a route whose events arrive only through a rule this
  deployment does not own, which ``init`` does not maintain and whose owner may
  remove it (the route then stops, silently);
- **stale-rule**: a rule the deployment owns that the routes no longer derive;
- **missing-bucket**: a bucket a route triggers on does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runtime.app.check import Finding
from runtime.app.rules import Rule, derive

if TYPE_CHECKING:
    from runtime.app.router import App, Route


def live_findings(
    app: App, live: Mapping[str, list[Rule] | None], *, arn: str, owner: str
) -> list[Finding]:
    """What differs between the routes and the rules ``live`` holds (per bucket)."""
    found: list[Finding] = []
    for bucket, rules in live.items():
        if rules is None and any(r.bucket == bucket for r in app.routes):
            found.append(
                Finding(
                    kind="missing-bucket",
                    problem=True,
                    functions=tuple(r.name for r in app.routes if r.bucket == bucket),
                    bucket=bucket,
                    message=f"bucket {bucket!r} does not exist (`bucketfn init` creates it)",
                )
            )
    for route in app.routes:
        rules = live.get(route.bucket)
        if rules is not None:
            found += _delivery(route, rules, arn=arn, owner=owner)
    derived = derive(app, arn, owner)
    for bucket, rules in live.items():
        wanted = {r.shape for r in derived.get(bucket, [])}
        for rule in rules or []:
            if rule.id.startswith(owner) and rule.shape not in wanted:
                found.append(
                    Finding(
                        kind="stale-rule",
                        problem=True,
                        functions=(),
                        bucket=bucket,
                        message=(
                            f"rule {rule.id!r} ({bucket}/{rule.prefix}*) is not what the routes "
                            "derive (`bucketfn init` replaces it)"
                        ),
                    )
                )
    return found


def _delivery(route: Route, rules: list[Rule], *, arn: str, owner: str) -> list[Finding]:
    missing: list[str] = []
    foreign: dict[str, None] = {}
    for event in sorted(route.events):
        delivering = [r for r in rules if r.delivers(route, event, arn)]
        if not delivering:
            missing.append(event)
        elif not any(r.id.startswith(owner) for r in delivering):
            foreign.update(dict.fromkeys(r.id for r in delivering))
    where = f"{route.bucket}/{route.prefix}*{','.join(route.suffixes)}"
    found: list[Finding] = []
    if missing:
        found.append(
            Finding(
                kind="drift",
                problem=True,
                functions=(route.name,),
                bucket=route.bucket,
                message=(
                    f"no notification rule delivers {', '.join(missing)} on {where} to {arn} "
                    "(`bucketfn init` adds it)"
                ),
            )
        )
    if foreign:
        found.append(
            Finding(
                kind="shadowed",
                problem=True,
                functions=(route.name,),
                bucket=route.bucket,
                message=(
                    f"{where} is delivered only by {', '.join(map(repr, foreign))}, a rule this "
                    f"deployment does not own (ids starting {owner!r}): `bucketfn init` "
                    "does not keep it, and its owner may remove it"
                ),
            )
        )
    return found
