"""The accounting of ``make cluster-faults`` (tests/cluster/load.py), without servers."""

from __future__ import annotations

from tests.cluster.load import _overlap


def _run(start: str, ms: float) -> dict[str, object]:
    return {"started_at": f"2026-01-01T00:00:{start}+00:00", "duration_ms": ms}


def test_overlap_counts_runs_in_progress_at_once() -> None:
    runs = [_run("00.0", 1000), _run("00.5", 1000), _run("00.9", 200), _run("05.0", 10)]
    assert _overlap(runs) == 3


def test_a_run_ending_as_another_starts_does_not_overlap() -> None:
    assert _overlap([_run("00.0", 1000), _run("01.0", 1000)]) == 1


def test_no_runs_no_peak() -> None:
    assert _overlap([]) == 0
