"""bucketfn's runtime: declare functions on bucket events; the runtime runs them.

Everything a function author needs is importable from here, and functions
import nothing else of the runtime (an import-linter contract keeps it so)::

    from runtime import Context, ObjectEvent, Router

    router = Router()

    @router.function(bucket="job-inputs", prefix="uploads/", suffix=".csv")
    async def count(event: ObjectEvent, ctx: Context) -> dict[str, int]: ...

``runtime.testing`` holds the in-memory harness for tests.
"""

from runtime.adapters.s3 import open_storage
from runtime.app.context import Context
from runtime.app.router import App, Route, Router
from runtime.core.cpu import offload
from runtime.core.errors import (
    BrokerError,
    BucketfnError,
    ConfigError,
    EventError,
    InputError,
    InvocationSignal,
    ObjectGone,
    Reject,
    Retry,
    StorageError,
    Superseded,
    UsageError,
)
from runtime.core.events import DATA_EVENTS, ObjectEvent
from runtime.core.retry import RetryPolicy
from runtime.core.seams import Body, ObjectInfo, Storage
from runtime.core.streams import MIB, gunzip, rechunk

__all__ = [
    "DATA_EVENTS",
    "MIB",
    "App",
    "Body",
    "BrokerError",
    "BucketfnError",
    "ConfigError",
    "Context",
    "EventError",
    "InputError",
    "InvocationSignal",
    "ObjectEvent",
    "ObjectGone",
    "ObjectInfo",
    "Reject",
    "Retry",
    "RetryPolicy",
    "Route",
    "Router",
    "Storage",
    "StorageError",
    "Superseded",
    "UsageError",
    "gunzip",
    "offload",
    "open_storage",
    "rechunk",
]
