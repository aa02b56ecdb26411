"""The one error the CSV record counter raises: the stream is not CSV it can count."""

from __future__ import annotations

from runtime import InputError

__all__ = ["CsvFormatError"]


class CsvFormatError(InputError):
    """The stream is not CSV we can count: unterminated quote, bad or oversized header.

    ``reason`` says what is wrong; ``offset`` is the 0-based byte offset in the raw
    stream (BOM included) where it is: the opening quote that never closes, the
    first undecodable header byte, or where the header passed its size cap.
    A subclass of :class:`runtime.core.errors.InputError` (hence a ``ValueError``):
    the content is malformed, so retrying cannot help.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason, where=f"byte {offset}")
        self.offset = offset

    def __reduce__(self) -> tuple[type[CsvFormatError], tuple[str, int]]:
        # ``args`` holds the formatted message only; rebuild from the fields.
        return type(self), (self.reason, self.offset)
