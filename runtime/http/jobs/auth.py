"""Bearer-token authentication of the jobs API (RFC 6750).

One deployment, one token: the API is the backend of an application, not a
multi-tenant service, so the token is a shared secret compared in constant
time. It comes from ``BUCKETFN_API_TOKEN``, else from a file (``make up`` writes
``.state/api/token``). Without one the API serves loopback only, and then every
request is accepted: the machine is the boundary. Off loopback it refuses to
start without a token, and a short token is refused everywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runtime.core.errors import ConfigError
from runtime.http.jobs.problems import ProblemError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from pydantic import SecretStr

MIN_TOKEN_LENGTH = 16  # below this a token can be guessed; `make up` writes 64 hex digits

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`; the token is BUCKETFN_API_TOKEN "
    "(`make up` writes one to .state/api/token).",
)


def token_from(configured: SecretStr | None, path: Path | None) -> str | None:
    """The token: the setting's, else the file's (stripped), else None."""
    if configured is not None:
        token = configured.get_secret_value().strip()
        source = "BUCKETFN_API_TOKEN"
    elif path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the API token from {path}: {exc}") from exc
        source = str(path)
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the API token from {source} is shorter than {MIN_TOKEN_LENGTH} characters; "
            "use a random one, e.g. `openssl rand -hex 32`"
        )
    return token


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name could resolve to anything: not loopback


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if token is None and not loopback(host):
        raise ConfigError(
            f"refusing to serve the jobs API on {host} without a token: set "
            "BUCKETFN_API_TOKEN (or --token-file), or listen on 127.0.0.1"
        )


def _unauthorized(detail: str, error: str | None = None) -> ProblemError:
    challenge = 'Bearer realm="bucketfn"' + (f', error="{error}"' if error else "")
    return ProblemError(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": challenge},
    )


def guard(token: str | None) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through only with ``token`` (anything if None)."""
    expected = token.encode() if token is not None else None

    async def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if expected is None:
            return
        if credentials is None:
            raise _unauthorized(
                "send `Authorization: Bearer <token>`; the token is in BUCKETFN_API_TOKEN "
                "or .state/api/token"
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise _unauthorized("the bearer token is not this API's", "invalid_token")

    return authorized
