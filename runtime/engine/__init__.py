"""Running functions: the dispatcher (ingress → function queues), the worker, consumers,
the process that wires them, and the observer seam everything reports through."""
