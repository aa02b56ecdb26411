"""CPU-bound work runs off the event loop, a bounded number at a time."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

from functions.csv_count.count import csv_row_count
from functions.csv_count.scanner import RecordCounter
from functions.json_canonical import canonical
from functions.json_canonical import canonicalize as json_module
from functions.json_canonical.canonicalize import json_canonicalize
from runtime import offload
from runtime.testing import Harness


def _recording(calls: list[threading.Thread], fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(threading.current_thread())
        return fn(*args, **kwargs)

    return wrapper


async def test_json_canonicalize_runs_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: canonicalize ran on the loop; a 4-byte JSON waited seconds behind big ones.
    calls: list[threading.Thread] = []
    original = canonical.canonicalize
    monkeypatch.setattr(json_module, "canonicalize", _recording(calls, original))
    result = await Harness().run(json_canonicalize, b'{"b": 1, "a": 2}', key="uploads/x.json")
    assert result.output["records"] == 1
    assert calls and all(t is not threading.main_thread() for t in calls)


async def test_csv_counting_in_python_runs_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pure-Python counter takes milliseconds to seconds a chunk: it must leave
    # the loop. (The native core, ~0.1 ms a MiB, scans on it: a thread hop costs more.)
    calls: list[threading.Thread] = []
    monkeypatch.setattr(RecordCounter, "native", False)
    monkeypatch.setattr(RecordCounter, "feed", _recording(calls, RecordCounter.feed))
    result = await Harness().run(csv_row_count, b"a,b\n1,2\n", key="uploads/x.csv")
    assert result.output["rows"] == 1
    assert calls and all(t is not threading.main_thread() for t in calls)


async def test_offload_bounds_how_many_run_at_once() -> None:
    running, peak = 0, 0
    gate = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with gate:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.05)
        with gate:
            running -= 1

    await asyncio.gather(*(offload(work) for _ in range(4 * (os.cpu_count() or 2))))
    assert 1 <= peak <= (os.cpu_count() or 2)
