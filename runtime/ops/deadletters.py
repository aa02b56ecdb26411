"""Dead-letter queues: list, show, replay, purge.

Every message in a dead-letter queue is decoded into one
:data:`~runtime.core.letters.Letter` (see there for the four kinds) and shown
as an :class:`Entry`.

RabbitMQ cannot read a queue without taking messages, so listing takes every
message unacked and closes the channel, which puts them all back. Replay
publishes with a confirm and only then acks (removes) the dead-letter copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from runtime.adapters.amqp import mapped
from runtime.core.errors import Unaddressable
from runtime.core.letters import (
    DeadLetter,
    DeliveryLimit,
    IngressDeadLetter,
    Letter,
    Undecodable,
    decode,
)
from runtime.core.records import Invocation, dumps, now
from runtime.engine.seen import Seen

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.adapters.amqp import Broker
    from runtime.app.router import App
    from runtime.core.seams import Storage
    from runtime.core.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One dead-lettered message as the tools show it, whatever put it there."""

    queue: str
    letter: Letter
    record: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, queue: str, function: str | None, message: AbstractIncomingMessage) -> Entry:
        """Decode one dead-letter message (never raises)."""
        letter = decode(
            message.body,
            message.headers,
            function=function,
            message_id=message.message_id,
            timestamp=message.timestamp,
        )
        record: Any
        if isinstance(letter, IngressDeadLetter):
            # Whatever came in on the ingress, up to the broker's maximum: shown bounded.
            return cls(queue=queue, letter=letter, record=letter.preview)
        try:
            record = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            record = {"body": message.body.decode(errors="replace")}
        return cls(queue=queue, letter=letter, record=record)

    @property
    def id(self) -> str:
        """The entry's id (what ``--id`` takes)."""
        return self.letter.id

    @property
    def kind(self) -> str:
        """``dead-letter``, ``delivery-limit``, ``undecodable`` or ``ingress``."""
        return "ingress" if isinstance(self.letter, IngressDeadLetter) else self.letter.kind

    @property
    def function(self) -> str | None:
        """The function it was for (None for the ingress)."""
        letter = self.letter
        if isinstance(letter, DeadLetter | Undecodable):
            return letter.function
        if isinstance(letter, DeliveryLimit):
            return letter.invocation.function
        return None

    @property
    def invocation(self) -> Invocation | None:
        """The invocation to replay, if it is one."""
        letter = self.letter
        return letter.invocation if isinstance(letter, DeadLetter | DeliveryLimit) else None

    @property
    def reason(self) -> str:
        """Why it was dead-lettered."""
        return self.letter.reason

    @property
    def error_type(self) -> str | None:
        """The error's type, when there was an error."""
        letter = self.letter
        if isinstance(letter, DeadLetter):
            return letter.error.type
        if isinstance(letter, DeliveryLimit):
            return "DeliveryLimit"
        return "EventError" if isinstance(letter, IngressDeadLetter) else None

    @property
    def error(self) -> str | None:
        """The error's message."""
        letter = self.letter
        return letter.error.message if isinstance(letter, DeadLetter) else letter.reason

    @property
    def fingerprint(self) -> str:
        """What groups entries of the same cause."""
        return self.letter.fingerprint

    @property
    def attempts(self) -> int:
        """Attempts made, replays included."""
        inv = self.invocation
        if inv is None:
            return 0
        return len(inv.history) + (1 if isinstance(self.letter, DeliveryLimit) else 0)

    @property
    def at(self) -> datetime | None:
        """When it was dead-lettered."""
        letter = self.letter
        if isinstance(letter, DeadLetter):
            return letter.dead_lettered_at
        if isinstance(letter, DeliveryLimit):
            return letter.at
        return letter.received_at

    @property
    def bucket(self) -> str | None:
        """The source object's bucket."""
        inv = self.invocation
        return inv.event.bucket if inv else None

    @property
    def key(self) -> str | None:
        """The source object's key."""
        inv = self.invocation
        return inv.event.key if inv else None

    def summary(self) -> dict[str, Any]:
        """The entry as plain data (``--json``), without the raw record."""
        return {
            "id": self.id,
            "function": self.function,
            "kind": self.kind,
            "reason": self.reason,
            "error_type": self.error_type,
            "error": self.error,
            "fingerprint": self.fingerprint,
            "attempts": self.attempts,
            "at": self.at.isoformat() if self.at else None,
            "bucket": self.bucket,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    """Which entries a command applies to; empty fields match everything."""

    ids: frozenset[str] = frozenset()
    function: str | None = None
    error: str | None = None
    fingerprint: str | None = None
    since: timedelta | None = None

    def __call__(self, entry: Entry) -> bool:
        if self.ids and entry.id not in self.ids:
            return False
        if self.function and entry.function != self.function:
            return False
        if self.fingerprint and not entry.fingerprint.startswith(self.fingerprint):
            return False
        if self.error:
            text = f"{entry.error_type or ''} {entry.error or ''} {entry.reason}".lower()
            if self.error.lower() not in text:
                return False
        # An entry whose time is unknown may be recent: --since keeps it rather than hide it.
        return not (self.since and entry.at is not None and entry.at < now() - self.since)


@dataclass(slots=True)
class ReplayReport:
    """What a replay did."""

    replayed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)  # those replayed, for a person to read


class DeadLetters:
    """The dead-letter queues of one app."""

    def __init__(
        self, broker: Broker, settings: Settings, app: App, storage: Storage | None = None
    ) -> None:
        self.broker = broker
        self.queues = settings.queues
        self.app = app
        self.storage = storage  # for :meth:`done`: where the result records are
        self.output_bucket = settings.output_bucket

    def _sources(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = [(self.queues.ingress_dlq, None)]
        out += [(self.queues.dead_letter(r.name), r.name) for r in self.app.routes]
        return out

    @contextlib.asynccontextmanager
    async def _taken(self) -> AsyncIterator[list[tuple[AbstractIncomingMessage, Entry]]]:
        """Every dead-letter message, held unacked; the rest go back on exit."""
        async with self.broker.channel() as channel:  # closing it returns what is not acked
            taken: list[tuple[AbstractIncomingMessage, Entry]] = []
            for queue_name, function in self._sources():
                queue = await self.broker.existing(channel, queue_name)
                async with mapped(f"reading {queue_name!r}"):
                    while (message := await queue.get(no_ack=False, fail=False)) is not None:
                        taken.append((message, Entry.of(queue_name, function, message)))
            yield taken

    async def entries(self, which: Filter = Filter()) -> list[Entry]:
        """The entries ``which`` selects, oldest first; nothing is removed."""
        async with self._taken() as taken:
            entries = [e for _, e in taken if which(e)]
        return sorted(entries, key=lambda e: e.at or now())

    async def replay(
        self,
        which: Filter,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReplayReport:
        """Send selected entries back to their function (ingress: to the ingress queue).

        Each is published with a confirm before its dead-letter copy is acked,
        so a crash mid-replay duplicates at worst (harmless: results are
        idempotent), never loses. The invocation keeps its history of attempts
        and starts a fresh retry budget.
        """
        report = ReplayReport()
        async with self._taken() as taken:
            chosen = [(m, e) for m, e in taken if which(e)]
            for done, (message, entry) in enumerate(chosen, 1):
                target, body = self._replay_message(entry)
                if target is None:
                    report.skipped[entry.id] = "not an invocation: it cannot be replayed"
                    continue
                if not dry_run:
                    await self.broker.publish(target, body, message_id=entry.id)
                    await message.ack()
                report.replayed.append(entry.id)
                report.entries.append(entry)
                if progress:
                    progress(done, len(chosen))
        return report

    def _replay_message(self, entry: Entry) -> tuple[str | None, bytes]:
        if isinstance(entry.letter, IngressDeadLetter):
            return self.queues.ingress, entry.letter.body
        if entry.invocation is None or entry.invocation.function not in self.app.by_name:
            return None, b""
        inv = entry.invocation.model_copy(
            update={"attempt": 1, "replays": entry.invocation.replays + 1, "first_seen": now()}
        )
        return self.queues.function(inv.function), dumps(inv)

    async def done(self, entries: Iterable[Entry]) -> set[str]:
        """Ids of ``entries`` whose work has succeeded since (see :func:`done_since`)."""
        if self.storage is None:
            raise TypeError("DeadLetters needs the storage to tell what was done since")
        return await done_since(self.storage, self.output_bucket, entries)

    async def purge(self, which: Filter, *, done_only: bool = False) -> list[str]:
        """Delete the selected entries for good (with ``done_only``, only those whose
        work has succeeded since); returns their ids."""
        async with self._taken() as taken:
            chosen = [(m, e) for m, e in taken if which(e)]
            if done_only:
                ready = await self.done(e for _, e in chosen)
                chosen = [(m, e) for m, e in chosen if e.id in ready]
            for message, _ in chosen:
                await message.ack()
        return [e.id for _, e in chosen]


HEADS = 16  # concurrent record HEADs when checking what was done since


async def done_since(storage: Storage, output_bucket: str, entries: Iterable[Entry]) -> set[str]:
    """Ids of the entries whose revision has a successful result record by now.

    Their work was done after all: a delivery-limit letter for a run whose retry had
    already been published, a replay that succeeded elsewhere. Replaying one ends
    ``duplicate``, so they can be purged (``dlq purge --done``).
    """
    limit = asyncio.Semaphore(HEADS)

    async def one(entry: Entry) -> str | None:
        inv = entry.invocation
        if inv is None:
            return None
        async with limit:
            try:
                record = await storage.head(output_bucket, inv.record_key)
            except Unaddressable:
                return None
        done = record is not None and Seen.of(record.metadata or {}).done(inv.event.revision)
        return entry.id if done else None

    return {i for i in await asyncio.gather(*(one(e) for e in entries)) if i is not None}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d`` → timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 15m, 2h, 7d") from None


def select(ids: Iterable[str] = (), **kwargs: Any) -> Filter:
    """Build a :class:`Filter` from CLI-style arguments."""
    return Filter(ids=frozenset(ids), **kwargs)
