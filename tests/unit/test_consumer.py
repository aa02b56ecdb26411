"""The consumer's stop: in-flight work gets its grace, and cancelled work finishes its cleanup."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.engine.consumer import Consumer


class _Queue:
    name = "q"


async def test_a_drain_returns_only_after_cancelled_handlers_cleaned_up() -> None:
    # Before: drain cancelled what outlived the grace and returned at once, so a
    # handler's multipart abort could run after the channel closed (or never).
    cleaned: list[str] = []
    started = asyncio.Event()

    async def slow(message: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # e.g. aborting a multipart upload
            cleaned.append("aborted")

    consumer = Consumer(None, _Queue(), slow)  # type: ignore[arg-type]
    task = asyncio.create_task(consumer._on_message(object()))  # type: ignore[arg-type]
    await started.wait()
    await consumer.drain(0.01)
    assert cleaned == ["aborted"]
    assert task.done()


async def test_abandoning_waits_for_cleanup_too() -> None:
    cleaned: list[str] = []
    started = asyncio.Event()

    async def slow(message: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)
            cleaned.append("closed spools")

    consumer = Consumer(None, _Queue(), slow)  # type: ignore[arg-type]
    asyncio.create_task(consumer._on_message(object()))  # type: ignore[arg-type]  # noqa: RUF006
    await started.wait()
    await consumer.abandon()
    assert cleaned == ["closed spools"]
