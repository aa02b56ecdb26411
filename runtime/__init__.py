"""bucketfn's runtime: declare functions on bucket events; the runtime runs them.

Everything a function author needs is importable from here.
"""

from runtime.context import Context
from runtime.errors import (
    BucketfnError,
    ConfigError,
    InputError,
    ObjectGone,
    Reject,
    Retry,
    StorageError,
    Superseded,
)
from runtime.events import DATA_EVENTS, ObjectEvent
from runtime.retry import RetryPolicy
from runtime.routing import App, Route, Router

__all__ = [
    "DATA_EVENTS",
    "App",
    "BucketfnError",
    "ConfigError",
    "Context",
    "InputError",
    "ObjectEvent",
    "ObjectGone",
    "Reject",
    "Retry",
    "RetryPolicy",
    "Route",
    "Router",
    "StorageError",
    "Superseded",
]
