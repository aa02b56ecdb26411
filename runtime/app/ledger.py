"""Writes that an older revision of the source can never replace: history, then settle.

A result record or a lake promotion describes one revision of its source
object. Invocations for two revisions of one key may run at once (a retry, a
redelivery, a slow run on a versioned read), and whichever finishes last
would win a plain PUT. Conditional PUTs stall under a polling reader on
MinIO, and locks would block readers; so nothing here ever waits on a reader:

1. each writer PUTs its content to a *history entry* of its own, named by the
   revision's order (the S3 sequencer, zero-padded so names sort as numbers)
   and a digest of the revision — one per revision (a later outcome of the
   same revision, such as a replay that now succeeds, rewrites it);
2. it then *settles* the target: list the history, HEAD the source, pick the
   winner (the entry of the source's current revision; else the highest
   sequencer), and if the target does not hold the winner's latest write (each
   write of an entry carries an id in its metadata, and a copy keeps it),
   server-side copy the winner onto it; repeat until a look finds it in place.

Why the newest always ends up in place: every copy is followed by another
look, so the last operation on a target is a look that found it holding the
winner of every entry that existed then. An entry written later is settled by
its own writer, whose look comes later still. A writer that loses learns so
(its entry is not the winner) and reports its invocation superseded. Entries
that can no longer win are pruned, so a key's history stays at about one entry
(for a record, a second small object; for a promotion, a second copy of it).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from runtime.core.errors import ObjectGone, StorageError, Unaddressable
from runtime.core.records import digest

if TYPE_CHECKING:
    from runtime.core.seams import Body, ObjectInfo, Storage

HISTORY = "_history"
"""The output-prefix segment that holds history entries (``ctx.write`` refuses it)."""

WRITE = "bucketfn-write"
"""Metadata naming one write of an entry: a revision's entry is rewritten (a replay
that now succeeds), and the target must then be copied again."""
ORDER_DIGITS = 32  # hex digits an order is padded to: S3 sequencers are at most this long
UNORDERED = "0" * ORDER_DIGITS  # an event without a sequencer (sweep, backfill) sorts first
ROUNDS = 8  # settle rounds before giving up with a transient error (the retry settles again)
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_NAME = re.compile(r"([0-9a-f]{32})-([0-9a-f]{16})")


class Standing(Enum):
    """Where a writer's entry (or record, :mod:`runtime.engine.record`) stands once written."""

    NEWEST = "newest"  # in place, and the source's current revision (or it is gone)
    INTERIM = "interim"  # in place for now: the source moved on, its own run is coming
    LOST = "lost"  # a newer revision's entry is in place
    PLACED = "placed"  # in place; whether the source moved on since was not asked
    DONE = "done"  # this revision's success was in place already: nothing written


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    """One revision's place in a target's history: ``<order>-<revision digest>``."""

    order: str
    revision: str

    @classmethod
    def of(cls, revision: str, sequencer: str | None) -> Entry:
        """The entry of ``revision`` (version id, else etag) written at ``sequencer``."""
        ordered = sequencer is not None and _HEX.fullmatch(sequencer) is not None
        order = sequencer.lower().rjust(ORDER_DIGITS, "0") if sequencer and ordered else UNORDERED
        return cls(order, digest(revision.encode()))

    @classmethod
    def parse(cls, name: str) -> Entry | None:
        """Read an entry back from its object name (None for anything else)."""
        m = _NAME.fullmatch(name)
        return cls(m[1], m[2]) if m else None

    @property
    def name(self) -> str:
        """The history object's name: sorts in write order."""
        return f"{self.order}-{self.revision}"


def _write(info: ObjectInfo) -> str | None:
    return (info.metadata or {}).get(WRITE)


async def current_of(storage: Storage, bucket: str, key: str) -> ObjectInfo | None:
    """A source object's current state, which :func:`pick` ranks first; None for a key
    the store cannot name (such an object cannot exist: its dead-letter record must
    still be written)."""
    try:
        return await storage.head(bucket, key)
    except Unaddressable:
        return None


def pick(entries: list[Entry], current: ObjectInfo | None) -> tuple[Entry | None, bool]:
    """The entry a target should hold, and whether it is the source's current revision's.

    The store's current revision is the final word (it also outranks a forged or
    skewed sequencer, and an entry of the sweep, which has no sequencer); the
    sequencer orders the rest, for while the current revision's own invocation
    is still running.
    """
    if current is not None:
        now = {digest(r.encode()) for r in (current.version_id, current.etag) if r}
        matching = [e for e in entries if e.revision in now]
        if matching:
            return max(matching), True
    return (max(entries) if entries else None), False


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """One target object and its history, for one source object."""

    storage: Storage
    history_bucket: str
    history: str  # prefix of the history entries, ending in "/"
    bucket: str  # the target
    key: str
    source_bucket: str
    source_key: str

    def path(self, entry: Entry) -> str:
        """The key of ``entry``'s history object (in ``history_bucket``)."""
        return self.history + entry.name

    async def write(
        self,
        entry: Entry,
        body: Body,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        keep: Mapping[str, str] | None = None,
    ) -> Standing:
        """Write ``entry``'s content and settle the target; where the entry stands.

        With ``keep``, an entry this revision already has whose metadata holds
        those items is kept as it is and only settled: a run redone after a
        crash (killed between its promotion and its ack) then leaves no second
        version of the target with other bytes. A record passes no ``keep``: a
        replay that now succeeds must replace its revision's dead-letter record.
        """
        done = None
        if keep is not None:
            done = await self.storage.head(self.history_bucket, self.path(entry))
        meta = (done.metadata or {}) if done is not None else {}
        if done is not None and keep is not None and all(meta.get(k) == v for k, v in keep.items()):
            await _discard(body)
            winner, current = await self.settle()
        else:
            await self.storage.put(
                self.history_bucket,
                self.path(entry),
                body,
                content_type=content_type,
                metadata={**metadata, WRITE: uuid.uuid4().hex},
            )
            winner, current = await self.settle(mine=entry)
        # The same revision's other entry (its event's run, ordered by the sequencer,
        # beside the sweep's unordered one) is this very revision: not a loss.
        if winner is None or winner.revision != entry.revision:
            return Standing.LOST
        return Standing.NEWEST if current else Standing.INTERIM

    async def settle(self, *, mine: Entry | None = None) -> tuple[Entry | None, bool]:
        """Make the target hold the winner; returns it (None: no history at all) and
        whether it is the source's current revision (True, too, if the source is gone).

        ``mine`` is the entry the caller has just written. When it wins, the target
        cannot already hold that fresh write, so it is copied without looking at the
        target first. After a copy, a listing that shows the copied entry still the
        winner ends the settle: whoever wrote the target after us looks again after
        its own write. A writer's common case is so one PUT, two LISTs, one HEAD and
        one COPY.
        """
        copied: Entry | None = None
        current: ObjectInfo | None = None
        for _ in range(ROUNDS):
            entries = [
                e
                async for info in self.storage.list(self.history_bucket, self.history)
                if (e := Entry.parse(info.key[len(self.history) :])) is not None
            ]
            if copied is not None:
                winner, is_current = pick(entries, current)
                if winner == copied:
                    await self._prune(entries, winner, everything=is_current)
                    return winner, is_current or current is None
            current = await current_of(self.storage, self.source_bucket, self.source_key)
            winner, is_current = pick(entries, current)
            if winner is None:
                return None, False
            if winner != mine or copied is not None:
                source = await self.storage.head(self.history_bucket, self.path(winner))
                if source is None:
                    continue  # pruned by a writer that saw a newer entry: look again
                held = await self.storage.head(self.bucket, self.key)
                if held is not None and _write(held) == _write(source) is not None:
                    await self._prune(entries, winner, everything=is_current)
                    return winner, is_current or current is None
            try:
                await self.storage.copy(
                    self.history_bucket, self.path(winner), to_bucket=self.bucket, to_key=self.key
                )
            except ObjectGone:
                copied = None
                continue  # pruned by a writer that saw a newer entry: look again
            copied = winner
        # Writers kept overtaking each other: a transient state, and the retry settles again.
        raise StorageError(
            f"{self.bucket}/{self.key} kept changing for {ROUNDS} rounds while settling"
        )

    async def _prune(self, entries: list[Entry], winner: Entry, *, everything: bool) -> None:
        # Listed entries are never newer than the source's current revision (each
        # is written after its revision is), so once the current revision's entry
        # is in place every other one is older and can go. Without it, only those
        # ordered below the winner: the rest may still outrank it.
        # Housekeeping only: an entry left behind is pruned by the next settle, so a
        # refused or failed DELETE never fails the invocation.
        for e in entries:
            if e != winner and (everything or e.order < winner.order):
                with contextlib.suppress(StorageError):
                    await self.storage.delete(self.history_bucket, self.path(e))


async def _discard(body: Body) -> None:
    """Close a stream body that will not be read (its generator's cleanup runs now)."""
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()
