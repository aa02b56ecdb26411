"""Errors of the JSON canonicalizer, and the slow exact reader that locates them.

The fast path (``functions.json_canonical.canonical``) trusts orjson; once something is wrong
this pure-Python I-JSON reader re-reads the text to say exactly where: a JSON
pointer and a byte offset. It is iterative, so nesting depth is no limit.
"""

from __future__ import annotations

import json
import re
from _json import scanstring  # the C string reader behind json.loads
from typing import Any

from runtime import InputError

__all__ = ["CanonicalError", "locate_or", "raise_located"]

_MAX_SAFE = 2**53 - 1


class CanonicalError(InputError):
    """Input that is not I-JSON, or too large; permanent, with where it is.

    ``where`` reads like ``"line 12, /a/3/b, byte 57"``: the JSON Lines line
    (1-based) if any, the JSON pointer of the offending value or member if
    known, and the byte offset (within the line for JSON Lines) if known.
    """

    where: str

    def __init__(
        self,
        reason: str,
        *,
        pointer: str = "",
        offset: int | None = None,
        line: int | None = None,
    ) -> None:
        parts = [f"line {line}"] if line is not None else []
        parts += [pointer] if pointer else []
        parts += [f"byte {offset}"] if offset is not None else []
        super().__init__(reason, where=", ".join(parts))
        self.pointer = pointer
        self.offset = offset
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"pointer": self.pointer, "offset": self.offset, "line": self.line}
        return (_rebuild_error, (self.reason, kwargs))


def _rebuild_error(reason: str, kwargs: dict[str, Any]) -> CanonicalError:
    return CanonicalError(reason, **kwargs)


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


def raise_located(doc: bytes) -> None:
    """Raise the first I-JSON violation in ``doc``, located; return if there is none."""
    error = _Locator(doc).run()
    if error is not None:
        raise error


def locate_or(doc: bytes, reason: str, offset: int | None) -> CanonicalError:
    """The located violation in ``doc``, else an error with what the fast path knew."""
    return _Locator(doc).run() or CanonicalError(reason, offset=offset)


class _Locator:
    """Finds the first I-JSON violation in a text, with its pointer and byte offset.

    Iterative, so nesting depth is no limit; pure Python, so only for errors.
    """

    def __init__(self, doc: bytes) -> None:
        # surrogateescape keeps invalid UTF-8 visible (as lone surrogates) instead
        # of failing before we know which value holds it.
        self.text = doc.decode("utf-8", "surrogateescape")
        self.path: list[str | int | None] = []  # None: an object's key not read yet
        self.keys: list[set[str] | None] = []  # per open container; None for arrays

    def run(self) -> CanonicalError | None:
        text = self.text
        try:
            pos = self.value(self.skip(0))
            while True:  # after a value: close containers or go to the next member
                pos = self.skip(pos)
                if not self.keys:
                    if pos < len(text):
                        raise self.fail("unexpected content after the JSON text", pos)
                    return None
                closer = "]" if self.keys[-1] is None else "}"
                if text.startswith(closer, pos):
                    self.keys.pop()
                    self.path.pop()
                    pos += 1
                elif text.startswith(",", pos):
                    pos = self.skip(pos + 1)
                    index = self.path[-1]
                    if isinstance(index, int):  # in an array
                        self.path[-1] = index + 1
                    else:
                        pos = self.key(pos)
                    pos = self.value(pos)
                elif pos < len(text):
                    raise self.fail(f"expected ',' or '{closer}'", pos)
                else:
                    raise self.fail("unexpected end of the JSON text", pos)
        except CanonicalError as exc:
            return exc

    def skip(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()  # type: ignore[union-attr]

    def fail(self, reason: str, pos: int) -> CanonicalError:
        pointer = "".join(
            "/" + str(t).replace("~", "~0").replace("/", "~1") for t in self.path if t is not None
        )
        return CanonicalError(
            reason,
            pointer=pointer.encode("utf-8", "backslashreplace").decode(),
            offset=len(self.text[:pos].encode("utf-8", "surrogateescape")),
        )

    def value(self, pos: int) -> int:
        """Read one value; a container is only opened, up to its first member."""
        text = self.text
        while text.startswith(("{", "["), pos):
            is_object = text[pos] == "{"
            after = self.skip(pos + 1)
            if text.startswith("}" if is_object else "]", after):
                return after + 1
            self.keys.append(set() if is_object else None)
            self.path.append(None if is_object else 0)
            pos = self.key(after) if is_object else after
        if text.startswith('"', pos):
            return self.string(pos)[1]
        match = _NUMBER.match(text, pos)
        if match:
            literal = match.group()
            if match.group(1) is None and match.group(2) is None:
                # the length test first: int() refuses over 4300 digits
                if len(literal.lstrip("-")) > 16 or abs(int(literal)) > _MAX_SAFE:
                    raise self.fail("integer beyond ±(2^53-1) cannot be exact", pos)
            elif float(literal) in (float("inf"), float("-inf")):
                raise self.fail("number overflows a double", pos)
            return match.end()
        for literal in ("true", "false", "null"):
            if text.startswith(literal, pos):
                return pos + len(literal)
        if text.startswith(("NaN", "Infinity", "-Infinity"), pos):
            raise self.fail("NaN and Infinity are not JSON", pos)
        if pos >= len(text):
            raise self.fail("unexpected end of the JSON text", pos)
        raise self.fail("expected a JSON value", pos)

    def string(self, pos: int) -> tuple[str, int]:
        try:
            value, end = scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            reason = exc.msg.removesuffix(" at").lower()  # json's messages end "... at"
            raise self.fail(f"invalid string: {reason}", exc.pos) from None
        if _SURROGATE.search(value):
            raw = _SURROGATE.search(self.text, pos, end)
            raise self.fail("invalid UTF-8" if raw else "lone surrogate escape", pos)
        return value, end

    def key(self, pos: int) -> int:
        """Read a member's key and colon; return where its value starts."""
        self.path[-1] = None
        if not self.text.startswith('"', pos):
            raise self.fail("expected a string key", pos)
        key, end = self.string(pos)
        seen = self.keys[-1]
        assert seen is not None  # only objects read keys
        self.path[-1] = key
        if key in seen:
            raise self.fail("duplicate key", pos)
        seen.add(key)
        end = self.skip(end)
        if not self.text.startswith(":", end):
            raise self.fail("expected ':'", end)
        return self.skip(end + 1)
