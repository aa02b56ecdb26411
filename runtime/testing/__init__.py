"""Testing functions: the in-memory harness, and the real stack behind the same interface.

``open_stack`` gives one or the other by ``BUCKETFN_TEST_STACK`` (``memory`` by
default, ``real`` for MinIO and RabbitMQ), so one test body runs on both.
"""

from runtime.testing.failures import InvocationFailed
from runtime.testing.harness import Harness
from runtime.testing.memory import MemoryPublisher, MemoryStorage
from runtime.testing.real import RealStack
from runtime.testing.stack import STACK_ENV, Stack, open_stack

__all__ = [
    "STACK_ENV",
    "Harness",
    "InvocationFailed",
    "MemoryPublisher",
    "MemoryStorage",
    "RealStack",
    "Stack",
    "open_stack",
]
