"""Backoff and the retry/dead-letter decision: pure functions, no I/O.

Delays are served by TTL queues that dead-letter back into the function's queue
(no broker plugin). RabbitMQ only expires the message at the head of a queue,
so one queue holding mixed delays would hold short ones behind long ones; each
queue therefore holds one *tier*, and a message's own expiration (its jittered
delay) is at most its tier's TTL and more than half of it — a message can wait
behind a longer one in its tier by at most half the tier.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from runtime.core.errors import PERMANENT, ConfigError, Retry

TIERS_MS: tuple[int, ...] = tuple(1000 * 2**i for i in range(13))  # 1 s … 68 min


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a function is retried; declared with the function."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0
    max_age: float = 24 * 3600.0
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if not 0 < self.base_delay <= self.max_delay <= TIERS_MS[-1] / 1000:
            raise ConfigError(f"need 0 < base_delay <= max_delay <= {TIERS_MS[-1] // 1000} s")
        if self.timeout <= 0 or self.max_age <= 0:
            raise ConfigError("timeout and max_age must be positive")


class Verdict(Enum):
    """What happens to a failed attempt."""

    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The verdict, and for a retry the delay and the tier that serves it."""

    verdict: Verdict
    reason: str
    delay_ms: int = 0
    tier_ms: int = 0


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Delay in seconds before attempt ``attempt + 1``, exponential with jitter.

    "Equal jitter": half the exponential delay is kept, half is random, so
    retries spread out but never come back immediately.
    """
    exp = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    r: float = (rng or random).random()
    return exp / 2 + r * exp / 2


def delays(first: float = 0.5, cap: float = 10.0) -> Iterator[float]:
    """Reconnect delays: ``first``, doubling, then ``cap`` for ever.

    The one backoff for reaching a server (RabbitMQ at start, after a lost
    connection); invocations back off by :func:`backoff` and the delay tiers.
    """
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def tier_for(delay_ms: int) -> int:
    """The smallest tier that can hold ``delay_ms``."""
    for tier in TIERS_MS:
        if delay_ms <= tier:
            return tier
    return TIERS_MS[-1]


def tiers_for(policy: RetryPolicy) -> tuple[int, ...]:
    """The tiers a policy can ever use, so only those queues are declared."""
    top = tier_for(int(policy.max_delay * 1000))
    return tuple(t for t in TIERS_MS if t <= top)


def decide(
    policy: RetryPolicy,
    *,
    error: BaseException,
    attempt: int,
    age: float,
    rng: random.Random | None = None,
) -> Decision:
    """Retry or dead-letter a failed ``attempt`` (1-based) of an event ``age`` seconds old."""
    if isinstance(error, PERMANENT):
        return Decision(verdict=Verdict.DEAD_LETTER, reason="permanent error")
    if attempt >= policy.max_attempts:
        return Decision(
            verdict=Verdict.DEAD_LETTER, reason=f"attempts exhausted ({policy.max_attempts})"
        )
    if isinstance(error, Retry) and error.delay is not None:
        delay = min(max(error.delay, 0.0), policy.max_delay)
    else:
        delay = backoff(policy, attempt, rng)
    if age + delay > policy.max_age:
        return Decision(
            verdict=Verdict.DEAD_LETTER, reason=f"event older than max_age ({policy.max_age:g} s)"
        )
    delay_ms = max(1, int(delay * 1000))
    return Decision(
        verdict=Verdict.RETRY, reason="retry", delay_ms=delay_ms, tier_ms=tier_for(delay_ms)
    )
