"""Listing a prefix, and checking that a source is still current before promoting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.errors import Superseded

if TYPE_CHECKING:
    from runtime.events import ObjectEvent
    from runtime.storage import Storage

__all__ = ["Listed", "list_objects", "still_current"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    """One object of a listing: enough to read it pinned, and to see that it changed."""

    key: str
    etag: str


async def list_objects(storage: Storage, bucket: str, prefix: str) -> list[Listed]:
    """Every object under ``prefix``, in key order."""
    return [Listed(key=o.key, etag=o.etag or "") async for o in storage.list(bucket, prefix)]


async def still_current(storage: Storage, event: ObjectEvent) -> None:
    """Raise Superseded if ``event``'s object has changed since the event.

    A long run (minutes for a large raw file) can be overtaken by a newer
    version of its source; checking again right before promoting keeps it from
    overwriting what the newer version's run wrote (its own event redoes the work).
    """
    info = await storage.head(event.bucket, event.key)
    if info is None or not event.describes(info.version_id, info.etag):
        raise Superseded(f"{event.bucket}/{event.key} changed while it was being processed")
