"""What the console needs from the process that serves it, as a protocol.

The jobs API's ``Services`` satisfies it as it stands; the console names this
protocol rather than that class so that the jobs API can mount the console
without the two packages importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.adapters.amqp import Broker
    from runtime.app.router import App
    from runtime.core.seams import Storage
    from runtime.core.settings import Settings


class Signer(Protocol):
    """Signs download URLs; the bytes never pass through the console."""

    async def get(self, bucket: str, key: str, *, expires_in: int) -> str:
        """A URL that downloads ``bucket/key`` until it expires."""
        ...


class Backend(Protocol):
    """The deployment and the servers behind it."""

    @property
    def settings(self) -> Settings:
        """The deployment's settings."""
        ...

    @property
    def app(self) -> App:
        """The deployed functions."""
        ...

    @property
    def storage(self) -> Storage:
        """The object store (result records)."""
        ...

    @property
    def presigner(self) -> Signer:
        """Signs the links to records and outputs."""
        ...

    @property
    def broker(self) -> Callable[[], Broker]:
        """The connected broker, or BrokerError (dead letters)."""
        ...
