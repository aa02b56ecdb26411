"""Listing a prefix, and checking that a source is still current before promoting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.errors import Superseded

if TYPE_CHECKING:
    from runtime.events import ObjectEvent
    from runtime.storage import ObjectInfo, Storage

__all__ = ["list_objects", "still_current"]


async def list_objects(storage: Storage, bucket: str, prefix: str) -> list[ObjectInfo]:
    """Every object under ``prefix``, in key order (equal lists: nothing changed)."""
    return [o async for o in storage.list(bucket, prefix)]


async def still_current(storage: Storage, event: ObjectEvent) -> None:
    """Raise Superseded if ``event``'s object has changed since the event.

    A long run (minutes for a large raw file) can be overtaken by a newer
    version of its source; checking again right before promoting keeps it from
    overwriting what the newer version's run wrote (its own event redoes the work).
    """
    info = await storage.head(event.bucket, event.key)
    if info is None or not event.describes(info.version_id, info.etag):
        raise Superseded(f"{event.bucket}/{event.key} changed while it was being processed")
