"""MinIO's bucket notification rules: derived from the routes, read back from a server.

Pure data and decisions; ``runtime.ops.provision`` writes the rules and
``runtime.app.check`` compares them with what a server holds right now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.app.router import App, Route


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One queue rule of a bucket's notification configuration."""

    id: str
    arn: str
    events: frozenset[str]
    prefix: str = ""
    suffix: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Rule:
        """A ``QueueConfigurations`` entry as S3 returns it (filter names in any case)."""
        filters = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        found = {str(f.get("Name", "")).lower(): str(f.get("Value", "")) for f in filters}
        return cls(
            id=str(config.get("Id", "")),
            arn=str(config.get("QueueArn", "")),
            events=frozenset(config.get("Events", [])),
            prefix=found.get("prefix", ""),
            suffix=found.get("suffix", ""),
        )

    def to_config(self) -> dict[str, Any]:
        """The ``QueueConfigurations`` entry for PutBucketNotificationConfiguration."""
        filters = [
            {"Name": name, "Value": value}
            for name, value in (("prefix", self.prefix), ("suffix", self.suffix))
            if value
        ]
        return {
            "Id": self.id,
            "QueueArn": self.arn,
            "Events": sorted(self.events),
            **({"Filter": {"Key": {"FilterRules": filters}}} if filters else {}),
        }

    def delivers(self, route: Route, event: str, arn: str) -> bool:
        """Whether this rule sends ``event`` for *every* key ``route`` matches to ``arn``.

        A rule that covers only part of the route's keys (a longer prefix, a
        suffix some of the route's keys lack) does not count: the rest is missed.
        """
        return (
            self.arn == arn
            and any(_event_matches(pattern, event) for pattern in self.events)
            and route.prefix.startswith(self.prefix)
            and (
                not self.suffix
                or (bool(route.suffixes) and all(s.endswith(self.suffix) for s in route.suffixes))
            )
        )

    @property
    def shape(self) -> tuple[str, str, tuple[str, ...], str, str]:
        """What the rule does, for comparing a rule written with one read back."""
        return (self.id, self.arn, tuple(sorted(self.events)), self.prefix, self.suffix)


def _event_matches(pattern: str, event: str) -> bool:
    # Rules written by others may use S3's wildcards (``s3:ObjectCreated:*``).
    return pattern == event or (pattern.endswith("*") and event.startswith(pattern[:-1]))


def rule_id(owner: str, prefix: str) -> str:
    """The id of the rule this deployment owns for ``prefix`` (``*`` for the whole bucket)."""
    return f"{owner}{prefix or '*'}"


def derive(app: App, arn: str, owner: str) -> dict[str, list[Rule]]:
    """Per bucket, the rules that deliver every event some route wants.

    One rule per distinct prefix (a prefix covered by a shorter one is dropped:
    its events arrive through the shorter one's rule); suffixes and event types
    are matched precisely by the router, so rules never overlap and fan-out to
    several functions needs no duplicate rule.
    """
    by_bucket: dict[str, set[str]] = defaultdict(set)
    wanted: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        by_bucket[route.bucket].add(route.prefix)
        wanted[route.bucket] |= route.events
    return {
        bucket: [
            Rule(id=rule_id(owner, p), arn=arn, events=frozenset(wanted[bucket]), prefix=p)
            for p in covering_prefixes(prefixes)
        ]
        for bucket, prefixes in by_bucket.items()
    }


def covering_prefixes(prefixes: Iterable[str]) -> list[str]:
    """The prefixes no other one of ``prefixes`` covers, sorted."""
    found = set(prefixes)
    return sorted(p for p in found if not any(p != q and p.startswith(q) for q in found))


def merged(current: Mapping[str, Any], ours: Iterable[Rule], owner: str) -> dict[str, Any] | None:
    """The bucket's notification configuration with ``owner``'s rules replaced by ``ours``.

    Everyone else's rules (queue rules whose id lacks ``owner``, topic and
    lambda rules) are kept as they are. ``None`` when nothing would change.
    """
    queues = list(current.get("QueueConfigurations", []))
    theirs = [q for q in queues if not str(q.get("Id", "")).startswith(owner)]
    mine = [Rule.from_config(q) for q in queues if str(q.get("Id", "")).startswith(owner)]
    wanted = list(ours)
    if sorted(r.shape for r in mine) == sorted(r.shape for r in wanted):
        return None
    others = {
        k: current[k]
        for k in ("TopicConfigurations", "LambdaFunctionConfigurations")
        if current.get(k)
    }
    return {"QueueConfigurations": theirs + [r.to_config() for r in wanted], **others}
