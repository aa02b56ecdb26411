"""One test, two stacks: the in-memory harness or real MinIO and RabbitMQ, by one switch.

::

    from runtime.testing import Stack, open_stack

    @pytest.fixture(scope="module")
    async def stack() -> AsyncIterator[Stack]:
        async with open_stack(json_canonicalize) as opened:
            yield opened

    async def test_canonical(stack: Stack) -> None:
        key = stack.key("uploads/", "doc.json")
        result = await stack.run(json_canonicalize, b'{"b": 1, "a": 2}', key=key)
        assert result.output["records"] == 1

``BUCKETFN_TEST_STACK`` chooses, when a stack opens: ``memory`` (the default) is
the :class:`~runtime.testing.Harness`; ``real`` is
:class:`~runtime.testing.real.RealStack`, the deployed runtime in this process
on the servers ``BUCKETFN_*`` names. On both, ``run`` returns the result
record or raises the function's exception, so ``pytest.raises`` reads the same.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from runtime.core.errors import ConfigError
from runtime.testing.harness import Harness
from runtime.testing.real import RealStack

if TYPE_CHECKING:
    from runtime.app.router import Handler, Route
    from runtime.core.records import Result
    from runtime.core.settings import Settings

STACK_ENV = "BUCKETFN_TEST_STACK"
"""The switch: ``memory`` (default) or ``real``."""


class Stack(Protocol):
    """What a function's test uses, whichever stack runs it."""

    output_bucket: str

    def key(self, prefix: str, name: str) -> str:
        """A key under ``prefix`` ending in ``name``, unique per call on a shared server."""
        ...

    async def run(
        self,
        function: Handler | Route,
        data: bytes,
        *,
        key: str = "uploads/test.bin",
        bucket: str = "job-inputs",
    ) -> Result:
        """Store ``data`` at ``bucket/key``, run ``function`` on it, return its record.

        The function's exception is raised (rebuilt from the record on the real stack).
        """
        ...

    async def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes (what the function wrote)."""
        ...


@contextlib.asynccontextmanager
async def open_stack(
    *functions: Handler | Route,
    versioned: frozenset[str] = frozenset(),
    settings: Settings | None = None,
) -> AsyncIterator[Stack]:
    """The stack ``BUCKETFN_TEST_STACK`` names, running ``functions``; torn down on exit.

    The real stack deploys the routes the functions were declared with (found
    in ``BUCKETFN_APP``, or pass :class:`Route` objects), so it needs them up
    front; the harness runs whatever it is given.
    """
    kind = os.environ.get(STACK_ENV, "memory")  # read when the stack opens, never at import
    if kind == "memory":
        yield Harness(versioned=versioned)
    elif kind == "real":
        async with RealStack.open(functions, versioned=versioned, settings=settings) as real:
            yield real
    else:
        raise ConfigError(f"{STACK_ENV}={kind!r}: expected 'memory' or 'real'")
