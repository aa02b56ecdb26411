"""One S3 endpoint resolution per bucket, not one per request.

botocore resolves every request's endpoint through S3's rule set (about a
hundred rules, ~0.5 ms of CPU). It caches the answer, but keyed by every
parameter, and S3's parameters include the object ``Key``, ``Prefix`` and
``CopySource``: with a new key per event, every request misses. The rule set
never reads those three (``test_endpoints`` checks that against the installed
botocore), so the answer depends only on the bucket and the client's settings:
cached by those, the whole process resolves each bucket once.
"""

from __future__ import annotations

import functools
from typing import Any

UNREAD = frozenset({"Key", "Prefix", "CopySource"})
"""Endpoint parameters S3's rule set declares but no rule references."""


def share_endpoints(client: Any, size: int = 256) -> bool:
    """Make ``client`` resolve endpoints once per distinct bucket; False if it cannot.

    Reaches into botocore's resolver (private attributes): where they are not
    as expected, the client is left as it is, correct and slower.
    """
    provider: Any = getattr(getattr(client, "_ruleset_resolver", None), "_provider", None)
    resolve = getattr(provider, "resolve_endpoint", None)
    if resolve is None:
        return False

    @functools.lru_cache(maxsize=size)
    def resolved(params: tuple[tuple[str, Any], ...]) -> Any:
        return resolve(**dict(params))

    def resolve_endpoint(**params: Any) -> Any:
        kept = tuple(sorted((k, v) for k, v in params.items() if k not in UNREAD))
        try:
            return resolved(kept)
        except TypeError:  # an unhashable parameter value: resolve it uncached
            return resolve(**params)

    provider.resolve_endpoint = resolve_endpoint
    return True
