"""Native core of the CSV record counter (``_scan.c``); see ``scanner.py``."""

KERNELS: tuple[str, ...]
"""The kernels this machine runs, fastest first."""
KERNEL: str
"""The kernel ``scan`` uses by default: ``KERNELS[0]``."""
RELEASE_GIL_FROM: int
"""Buffers of at least this many bytes are scanned with the GIL released."""

def scan(
    data: bytes | bytearray | memoryview,
    offset: int,
    in_quotes: bool,
    record: int,
    after_quote: bool,
    open_at: int,
    /,
    *,
    kernel: str | None = None,
) -> tuple[int, bool, int, bool, int]: ...
