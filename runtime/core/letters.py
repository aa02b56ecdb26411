"""Dead letters: one model, a union discriminated on ``kind``.

A dead-letter queue can hold four kinds of message, and every tool (``bucketfn
dlq``, the console, replay) reads them through :func:`decode` alone:

- ``dead-letter``: the worker gave up — the event, every attempt, the error
  with traceback and fingerprint;
- ``delivery-limit``: the broker dead-lettered an invocation itself because its
  consumer died on it ``delivery_limit`` times (the handler kills the process);
- ``undecodable``: a message on a function queue that is not an invocation;
- ``ingress-dead-letter``: a message on the ingress that is not a bucket event.

The first, third and fourth are written by bucketfn as such; the second is the
original invocation as the broker moved it, recognised by its death header.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError

from runtime.core.names import Header
from runtime.core.records import ErrorInfo, Invocation, Model, digest, fingerprint, now

MAX_REASON = 1024  # characters of a reason kept in a header (headers count toward the frame)
PREVIEW_BYTES = 4096  # of a raw body, in what the tools show


def raw_headers(reason: str, at: datetime | None = None) -> dict[str, str]:
    """The headers of a raw ingress dead letter: why (bounded) and when."""
    return {
        Header.REASON: reason[:MAX_REASON],
        Header.RECEIVED_AT: (at or now()).isoformat(),
    }


def _raw_ingress(
    body: bytes, meta: Mapping[str, Any], message_id: str | None
) -> IngressDeadLetter | None:
    """A raw ingress dead letter (body as it came, reason in headers), if it is one."""
    if _text(meta.get(Header.KIND)) != IngressDeadLetter.KIND:
        return None
    reason = _text(meta.get(Header.REASON))
    if reason is None:
        return None  # an older entry: the JSON wrapper, decoded as such
    at = _text(meta.get(Header.RECEIVED_AT))
    try:
        received = datetime.fromisoformat(at) if at else now()
    except ValueError:
        received = now()
    letter = IngressDeadLetter.of(reason, body, ident=message_id)
    return letter.model_copy(update={"received_at": received, "size": len(body)})


class _Raw(Model):
    """A message bucketfn could not understand, kept readable when it is text."""

    id: str
    reason: str
    body_text: str | None = None
    body_base64: str | None = None
    received_at: datetime = Field(default_factory=now)

    @property
    def body(self) -> bytes:
        """The original message body."""
        if self.body_text is not None:
            return self.body_text.encode()
        return base64.b64decode(self.body_base64 or "")

    @staticmethod
    def _body(body: bytes) -> dict[str, str]:
        try:
            return {"body_text": body.decode()}
        except UnicodeDecodeError:
            return {"body_base64": base64.b64encode(body).decode()}


class IngressDeadLetter(_Raw):
    """A message on the ingress queue that is not a bucket event.

    On the wire it is the raw message body as it came, with the reason and
    time in headers (:func:`raw_headers`): re-wrapped in JSON (escapes) or
    base64, a body that fitted the broker's maximum message size could exceed
    it and close the dispatcher's channel. Older entries are the JSON wrapper.
    """

    KIND: ClassVar[str] = "ingress-dead-letter"
    kind: Literal["ingress-dead-letter"] = "ingress-dead-letter"
    size: int | None = None

    @property
    def preview(self) -> dict[str, Any]:
        """What ``dlq show`` displays: bounded, however large the body is."""
        text = self.body[:PREVIEW_BYTES].decode(errors="replace")
        return {
            "kind": self.kind,
            "id": self.id,
            "reason": self.reason,
            "received_at": self.received_at.isoformat(),
            "size": len(self.body),
            "body_preview": text,
        }

    @classmethod
    def of(cls, reason: str, body: bytes, *, ident: str | None = None) -> IngressDeadLetter:
        """Keep the body readable when it is text, lossless when it is not."""
        return cls(id=ident or digest(body), reason=reason, **cls._body(body))

    @property
    def fingerprint(self) -> str:
        """Grouped by the reason's first clause (``not JSON``, ``malformed record``…)."""
        return fingerprint("ingress", self.reason.split(":")[0])


class Undecodable(_Raw):
    """A message on a function's queue that is not an invocation."""

    kind: Literal["undecodable"] = "undecodable"
    function: str

    @classmethod
    def of(
        cls, function: str, reason: str, body: bytes, *, ident: str | None = None
    ) -> Undecodable:
        """Keep the body readable when it is text, lossless when it is not."""
        return cls(id=ident or digest(body), function=function, reason=reason, **cls._body(body))

    @property
    def fingerprint(self) -> str:
        """Grouped by function and reason."""
        return fingerprint(self.function, "undecodable", self.reason.split(":")[0])


class DeadLetter(Model):
    """A function's dead-letter entry: the event and its whole story."""

    kind: Literal["dead-letter"] = "dead-letter"
    id: str
    function: str
    function_version: str
    reason: str
    invocation: Invocation
    error: ErrorInfo
    dead_lettered_at: datetime = Field(default_factory=now)

    @property
    def fingerprint(self) -> str:
        """The error's fingerprint: same bug, same group."""
        return self.error.fingerprint


class DeliveryLimit(Model):
    """An invocation the broker dead-lettered after its consumer died on it repeatedly."""

    kind: Literal["delivery-limit"] = "delivery-limit"
    id: str
    death: str
    invocation: Invocation
    at: datetime | None = None

    @property
    def reason(self) -> str:
        """What happened, for a person."""
        if self.death == "rejected":
            return (
                "broker dead-lettered it (rejected): the runtime could neither retry nor "
                "dead-letter it itself — see the runtime's log for why"
            )
        return (
            f"broker dead-lettered it ({self.death}): its consumer died on it repeatedly "
            "— the handler may crash or kill the process"
        )

    @property
    def fingerprint(self) -> str:
        """Grouped by function and the broker's reason."""
        return fingerprint(self.invocation.function, self.death)


Letter = Annotated[
    DeadLetter | DeliveryLimit | Undecodable | IngressDeadLetter, Field(discriminator="kind")
]
_LETTER: TypeAdapter[Letter] = TypeAdapter(Letter)


def decode(
    body: bytes,
    headers: Mapping[str, Any] | None,
    *,
    function: str | None,
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> Letter:
    """Whatever sits in a dead-letter queue, as a :data:`Letter` (never raises).

    ``function`` is the queue's function (None for the ingress dead-letter queue).
    """
    meta = headers or {}
    # Checked before the body is read as a letter: a raw body is whatever was
    # published to the ingress, and may itself look like any letter.
    raw = _raw_ingress(body, meta, message_id)
    if raw is not None:
        return raw
    try:
        return _LETTER.validate_json(body)
    except ValidationError:
        pass
    # x-last-death-reason (RabbitMQ 3.13+) says why it came here this time;
    # x-first-death-reason stays as the first death (e.g. "expired" in a delay tier).
    death = _text(meta.get(Header.LAST_DEATH_REASON) or meta.get(Header.FIRST_DEATH_REASON))
    if death:
        try:
            inv = Invocation.model_validate_json(body)
        except ValidationError:
            pass
        else:
            return DeliveryLimit(
                id=message_id or digest(body), death=death, invocation=inv, at=timestamp
            )
    if function is None:
        reason = (
            f"broker dead-lettered it ({death}): the dispatcher could not route it "
            "— see the runtime's log; replay it once the cause is fixed"
            if death
            else "unrecognised message"
        )
        return IngressDeadLetter.of(reason, body, ident=message_id)
    reason = f"unrecognised message{f' (broker: {death})' if death else ''}"
    return Undecodable.of(function, reason, body, ident=message_id)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value) if value else None
