"""A result record written in place, by a PUT conditional on the record it was judged against.

Invocations for two revisions of one key may finish in any order (a retry, a
redelivery, a slow run on a versioned read), so a plain PUT of ``result.json``
could put an older revision's record over a newer one's. Promotions settle
that through a history (:mod:`runtime.app.ledger`): five requests per write,
and a second copy of every file. A record needs neither, because its bytes
name one write (its event id and times are in it), so its etag does too:

1. judge the record in place (the HEAD the worker made before the handler
   ran): the same revision's success means there is nothing to write; another
   revision's is weighed against ours by the ledger's own rule (:func:`pick`:
   the source's current revision first, then the S3 sequencer);
2. PUT ours only over exactly that record: ``If-Match`` its etag, or
   ``If-None-Match: *`` when there was none. Whatever lands in between makes
   the PUT fail with 412, and the writer judges again.

Every record that lands so beats the one it replaced, and the newest revision's
invocation writes last-or-wins: the record ends as the newest revision's. In
the common case, a new object's first record, that is one PUT where the history
made five requests. The write holds MinIO's object lock only while the small
body is stored; readers polling ``result.json`` do not hold it up (measured:
p50 9.7 ms per conditional PUT under four GET loops on the same key).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.app.ledger import ROUNDS, Entry, Standing, current_of, pick
from runtime.core.errors import ObjectGone, StorageError, Superseded
from runtime.engine.seen import Seen

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runtime.core.seams import ObjectInfo, Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One source object's result record."""

    storage: Storage
    bucket: str
    key: str
    source_bucket: str
    source_key: str

    async def write(
        self,
        body: bytes,
        *,
        metadata: Mapping[str, str],
        held: ObjectInfo | None,
        placed: bool = False,
    ) -> Standing:
        """Put the record (``metadata`` as :meth:`Seen.stamp` makes it) over ``held``.

        ``held`` is the record as last seen (None: there was none). Returns
        ``DONE`` when this revision's success is in place already, ``LOST`` when
        a newer revision's record is. With ``placed`` the caller needs to know
        whether the source moved on (``NEWEST`` or ``INTERIM``); without it a
        written record is ``PLACED`` and the source is asked only when another
        revision's record is in the way.
        """
        mine = Seen.of(metadata)
        entry = Entry.of(mine.revision, mine.sequencer)
        # A single PUT's etag is its body's MD5: how a 412 tells our own write (an HTTP
        # retry of a PUT whose first try landed) from another writer's.
        ours = hashlib.md5(body, usedforsecurity=False).hexdigest()
        for _ in range(ROUNDS):
            current: ObjectInfo | None = None
            asked = False
            if held is not None:
                if held.etag is None:
                    raise StorageError(
                        f"{self.bucket}/{self.key}: the store gave no ETag to write against"
                    )
                theirs = Seen.of(held.metadata or {})
                if mine.revision and theirs.revision == mine.revision:
                    if theirs.status == "ok":
                        # A success is never replaced, by a second run or by a failure.
                        return Standing.DONE
                elif theirs.revision or theirs.sequencer:
                    # (Two records without a revision are ordered by their sequencers.)
                    current, asked = (
                        await current_of(self.storage, self.source_bucket, self.source_key),
                        True,
                    )
                    winner, _ = pick([Entry.of(theirs.revision, theirs.sequencer), entry], current)
                    if winner != entry:
                        return Standing.LOST
            try:
                await self.storage.put(
                    self.bucket,
                    self.key,
                    body,
                    content_type="application/json",
                    metadata=metadata,
                    if_match=held.etag if held is not None else None,
                    if_absent=held is None,
                )
            except (Superseded, ObjectGone):
                held = await self.storage.head(self.bucket, self.key)
                if held is None or held.etag != ours:
                    continue  # another record landed since the judgement: judge again
            if not placed:
                return Standing.PLACED
            if not asked:
                current = await current_of(self.storage, self.source_bucket, self.source_key)
            _, is_current = pick([entry], current)
            return Standing.NEWEST if is_current or current is None else Standing.INTERIM
        # Writers kept overtaking each other: a transient state, and the retry writes again.
        raise StorageError(f"{self.bucket}/{self.key} kept changing for {ROUNDS} rounds")
