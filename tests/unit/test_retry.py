"""Backoff and the retry/dead-letter decision."""

from __future__ import annotations

import random

import pytest

from runtime.core.errors import ConfigError, InputError, Reject, Retry
from runtime.core.retry import TIERS_MS, RetryPolicy, Verdict, backoff, decide, tier_for, tiers_for


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    p = RetryPolicy(base_delay=1, max_delay=60)
    rng = random.Random(7)
    for attempt in range(1, 10):
        exp = min(60, 2 ** (attempt - 1))
        d = backoff(p, attempt, rng)
        assert exp / 2 <= d <= exp


def test_jitter_spreads_retries() -> None:
    p = RetryPolicy()
    rng = random.Random(1)
    assert len({round(backoff(p, 3, rng), 6) for _ in range(20)}) > 10


def test_tiers_hold_their_delay() -> None:
    for delay in (1, 999, 1000, 1001, 4000, 4001, 300_000):
        tier = tier_for(delay)
        assert delay <= tier
        assert tier in TIERS_MS
    assert tiers_for(RetryPolicy(max_delay=10)) == (1000, 2000, 4000, 8000, 16000)


def test_transient_errors_are_retried_until_attempts_run_out() -> None:
    p = RetryPolicy(max_attempts=3)
    d1 = decide(p, error=OSError("reset"), attempt=1, age=0)
    assert d1.verdict is Verdict.RETRY and d1.delay_ms <= d1.tier_ms
    d3 = decide(p, error=OSError("reset"), attempt=3, age=0)
    assert d3.verdict is Verdict.DEAD_LETTER and "exhausted" in d3.reason


@pytest.mark.parametrize("error", [Reject("no"), InputError("bad csv")])
def test_permanent_errors_skip_retries(error: Exception) -> None:
    d = decide(RetryPolicy(), error=error, attempt=1, age=0)
    assert d.verdict is Verdict.DEAD_LETTER and d.reason == "permanent error"


def test_retry_signal_sets_the_delay_within_the_policy() -> None:
    p = RetryPolicy(max_delay=30)
    assert decide(p, error=Retry(2.5), attempt=1, age=0).delay_ms == 2500
    assert decide(p, error=Retry(3600), attempt=1, age=0).delay_ms == 30_000


def test_events_older_than_max_age_are_dead_lettered() -> None:
    d = decide(RetryPolicy(max_age=60), error=OSError(), attempt=1, age=59.9)
    assert d.verdict is Verdict.DEAD_LETTER and "max_age" in d.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": 0},
        {"base_delay": 10, "max_delay": 5},
        {"timeout": 0},
        {"max_delay": 10**6},
    ],
)
def test_policy_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
