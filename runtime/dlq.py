"""Dead-letter queues: list, show, replay, purge.

A dead-letter queue holds three kinds of message, all turned into one
:class:`Entry` here:

- ``dead-letter``: the worker's own record (:class:`~runtime.records.DeadLetter`)
  — the event, every attempt, the error with traceback and fingerprint;
- ``delivery-limit``: an invocation the broker dead-lettered itself because its
  consumer died on it ``delivery_limit`` times (e.g. the handler kills the process);
- ``ingress``: a message on the ingress queue that is not a bucket event.

RabbitMQ cannot read a queue without taking messages, so listing takes every
message unacked and closes the channel, which puts them all back. Replay
publishes with a confirm and only then acks (removes) the dead-letter copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiormq.exceptions import ChannelNotFoundEntity
from pydantic import ValidationError

from runtime.errors import BrokerError
from runtime.records import DeadLetter, IngressDeadLetter, Invocation, digest, dumps, now

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from runtime.broker import Broker
    from runtime.routing import App
    from runtime.settings import Settings

Kind = Literal["dead-letter", "delivery-limit", "undecodable", "ingress"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One dead-lettered message, whatever put it there."""

    id: str
    queue: str
    function: str | None
    kind: Kind
    reason: str
    error_type: str | None
    error: str | None
    fingerprint: str
    attempts: int
    at: datetime | None
    bucket: str | None
    key: str | None
    record: dict[str, Any] = field(repr=False)
    invocation: Invocation | None = field(default=None, repr=False)

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
        return not (self.since and (entry.at is None or entry.at < now() - self.since))


def _header(message: AbstractIncomingMessage, name: str) -> Any:
    value = (message.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else value


def decode(queue: str, function: str | None, message: AbstractIncomingMessage) -> Entry:
    """Turn one dead-letter message into an :class:`Entry` (never raises)."""
    body = message.body
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == "dead-letter":
        with contextlib.suppress(ValidationError):
            letter = DeadLetter.model_validate(doc)
            inv = letter.invocation
            return Entry(
                id=letter.id,
                queue=queue,
                function=letter.function,
                kind="dead-letter",
                reason=letter.reason,
                error_type=letter.error.type,
                error=letter.error.message,
                fingerprint=letter.error.fingerprint,
                attempts=len(inv.history),
                at=letter.dead_lettered_at,
                bucket=inv.event.bucket,
                key=inv.event.key,
                record=doc,
                invocation=inv,
            )
    if kind == "ingress-dead-letter":
        with contextlib.suppress(ValidationError):
            ingress = IngressDeadLetter.model_validate(doc)
            return Entry(
                id=ingress.id,
                queue=queue,
                function=None,
                kind="ingress",
                reason=ingress.reason,
                error_type="EventError",
                error=ingress.reason,
                fingerprint=digest(ingress.reason.split(":")[0].encode()),
                attempts=0,
                at=ingress.received_at,
                bucket=None,
                key=None,
                record=doc,
            )
    death = _header(message, "x-first-death-reason")
    if isinstance(doc, dict) and death:
        # Dead-lettered by the broker itself: the body is the original message.
        with contextlib.suppress(ValidationError):
            inv = Invocation.model_validate(doc)
            reason = (
                f"broker dead-lettered it ({death}): its consumer died on it repeatedly "
                "— the handler may crash or kill the process"
            )
            return Entry(
                id=message.message_id or digest(body),
                queue=queue,
                function=inv.function,
                kind="delivery-limit",
                reason=reason,
                error_type="DeliveryLimit",
                error=reason,
                fingerprint=digest(f"{inv.function}:{death}".encode()),
                attempts=len(inv.history) + 1,
                at=message.timestamp,
                bucket=inv.event.bucket,
                key=inv.event.key,
                record=doc,
                invocation=inv,
            )
    reason = str(_header(message, "x-bucketfn-reason") or death or "unrecognised message")
    return Entry(
        id=message.message_id or digest(body),
        queue=queue,
        function=function,
        kind="ingress" if function is None else "undecodable",
        reason=reason,
        error_type=None,
        error=reason,
        fingerprint=digest(reason.encode()),
        attempts=0,
        at=message.timestamp,
        bucket=None,
        key=None,
        record={"body": body.decode(errors="replace")},
    )


@dataclass(slots=True)
class ReplayReport:
    """What a replay did."""

    replayed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class DeadLetters:
    """The dead-letter queues of one app."""

    def __init__(self, broker: Broker, settings: Settings, app: App) -> None:
        self.broker = broker
        self.queues = settings.queues
        self.app = app

    def _sources(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = [(self.queues.ingress_dlq, None)]
        out += [(self.queues.dead_letter(r.name), r.name) for r in self.app.routes]
        return out

    @contextlib.asynccontextmanager
    async def _taken(self) -> AsyncIterator[list[tuple[AbstractIncomingMessage, Entry]]]:
        """Every dead-letter message, held unacked; the rest go back on exit."""
        channel = await self.broker.connection.channel()
        try:
            taken: list[tuple[AbstractIncomingMessage, Entry]] = []
            for queue_name, function in self._sources():
                try:
                    queue = await channel.declare_queue(queue_name, passive=True)
                except ChannelNotFoundEntity:
                    raise BrokerError(
                        f"queue {queue_name!r} does not exist: run `bucketfn init` first"
                    ) from None
                while (message := await queue.get(no_ack=False, fail=False)) is not None:
                    taken.append((message, decode(queue_name, function, message)))
            yield taken
        finally:
            # Closing returns every message not acked to its queue.
            await channel.close()

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
                target, body = self._replay_message(entry, message.body)
                if target is None:
                    report.skipped[entry.id] = "not an invocation: it cannot be replayed"
                    continue
                if not dry_run:
                    await self.broker.publish(target, body, message_id=entry.id)
                    await message.ack()
                report.replayed.append(entry.id)
                if progress:
                    progress(done, len(chosen))
        return report

    def _replay_message(self, entry: Entry, raw: bytes) -> tuple[str | None, bytes]:
        if entry.kind == "ingress":
            body = raw
            if entry.record.get("kind") == "ingress-dead-letter":
                text = entry.record.get("body_text")
                body = text.encode() if isinstance(text, str) else raw
            return self.queues.ingress, body
        if entry.invocation is None or entry.invocation.function not in self.app.by_name:
            return None, b""
        inv = entry.invocation.model_copy(
            update={"attempt": 1, "replays": entry.invocation.replays + 1, "first_seen": now()}
        )
        return self.queues.function(inv.function), dumps(inv)

    async def purge(self, which: Filter) -> list[str]:
        """Delete the selected entries for good; returns their ids."""
        async with self._taken() as taken:
            gone: list[str] = []
            for message, entry in taken:
                if which(entry):
                    await message.ack()
                    gone.append(entry.id)
        return gone


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
