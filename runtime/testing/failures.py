"""Failures on the real stack, raised as the handler raised them where that is possible."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from runtime.core import errors

if TYPE_CHECKING:
    from runtime.core.records import ErrorInfo


class InvocationFailed(AssertionError):
    """A failure on the real stack whose exception type cannot be rebuilt here."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.type}: {error.message}")
        self.error = error


_REBUILT: dict[str, type[errors.BucketfnError]] = {
    f"runtime.{cls.__name__}": cls
    for cls in (
        errors.Reject,
        errors.UsageError,
        errors.StorageError,
        errors.ObjectGone,
        errors.Superseded,
        errors.BrokerError,
        errors.ConfigError,
    )
}


def rebuild(error: ErrorInfo) -> Exception:
    """The exception a record describes, as the handler raised it, where that is possible.

    The runtime's own errors and the built-in ones are rebuilt from their type
    and message (as Celery rebuilds a task's exception); anything else is an
    :class:`InvocationFailed` holding the record's error. The handler's
    traceback, from the record, is attached as a note.
    """
    exc: Exception
    if error.type == "runtime.InputError":
        reason = error.message.removesuffix(f" (at {error.where})") if error.where else None
        exc = errors.InputError(reason or error.message, where=error.where)
    elif error.type in _REBUILT:
        exc = _REBUILT[error.type](error.message)
    elif isinstance(found := getattr(builtins, error.type, None), type) and issubclass(
        found, Exception
    ):
        try:
            exc = found(error.message)
        except TypeError:  # a built-in that takes other arguments (UnicodeDecodeError)
            exc = InvocationFailed(error)
    else:
        exc = InvocationFailed(error)
    if error.traceback:
        exc.add_note(f"raised on the real stack:\n{error.traceback}")
    return exc
