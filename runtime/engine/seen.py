"""Duplicate and stale-event detection from a result record's metadata.

The worker HEADs the record before running a handler; the record's metadata
says which revision (and S3 sequencer) it was written for, so no GET is needed
to skip a duplicate or refuse a stale event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime.core.names import Meta


@dataclass(frozen=True, slots=True)
class Seen:
    """What a result record's metadata says about the invocation that wrote it."""

    status: str
    revision: str
    sequencer: str | None

    @classmethod
    def of(cls, meta: Mapping[str, str]) -> Seen:
        """Read it back from the record's object metadata."""
        return cls(
            meta.get(Meta.STATUS, ""), meta.get(Meta.REVISION, ""), meta.get(Meta.SEQUENCER) or None
        )

    @staticmethod
    def stamp(
        *, function: str, status: str, revision: str, sequencer: str | None
    ) -> dict[str, str]:
        """The metadata a result record is written with (what :meth:`of` reads)."""
        return {
            Meta.FUNCTION: function,
            Meta.REVISION: revision,
            Meta.SEQUENCER: sequencer or "",
            Meta.STATUS: status,
        }

    def done(self, revision: str) -> bool:
        """Whether this record is a success for exactly ``revision``."""
        return self.status == "ok" and bool(revision) and self.revision == revision

    def newer_than(self, sequencer: str | None) -> bool:
        """Whether the record was written for a later write of the key than ``sequencer``."""
        return older(sequencer, self.sequencer)


def older(sequencer: str | None, than: str | None) -> bool:
    """S3 sequencers order the writes of one key: hex strings, compared as numbers."""
    if not sequencer or not than:
        return False
    try:
        return int(sequencer, 16) < int(than, 16)
    except ValueError:
        return False
