"""The in-memory harness: run a function on an object without MinIO or RabbitMQ."""

from runtime.testing.harness import Harness
from runtime.testing.memory import MemoryPublisher, MemoryStorage

__all__ = ["Harness", "MemoryPublisher", "MemoryStorage"]
