"""Where the process's metrics and health endpoints listen (``BUCKETFN_METRICS_ADDRESS``).

Kept beside the surface that uses it rather than in the core settings: only
``bucketfn run`` listens, and it reads this once, when the command starts.
"""

from __future__ import annotations

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.core.errors import ConfigError


class HttpSettings(BaseSettings):
    """``BUCKETFN_METRICS_ADDRESS``: ``host:port`` (``[::1]:9464`` for IPv6; port 0 picks one)."""

    model_config = SettingsConfigDict(env_prefix="BUCKETFN_", frozen=True, extra="ignore")

    # Loopback by default: metrics say what runs where; expose them on purpose.
    metrics_address: str = "127.0.0.1:9464"

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split(value)
        return value

    @property
    def host(self) -> str:
        """The host to bind."""
        return split(self.metrics_address)[0]

    @property
    def port(self) -> int:
        """The port to bind (0: any free one)."""
        return split(self.metrics_address)[1]


def split(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port); brackets around an IPv6 host are removed."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def load() -> HttpSettings:
    """Read the address from the environment now; a bad one is a ConfigError."""
    try:
        return HttpSettings()
    except ValidationError as exc:
        raise ConfigError(f"BUCKETFN_METRICS_ADDRESS: {exc.errors()[0]['msg']}") from exc
