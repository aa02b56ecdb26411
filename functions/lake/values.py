"""Cell values → typed Python values, one parser per column, with a reason when they fail.

A parser takes what a file holds for one cell — a ``str`` from CSV, or a JSON
value from JSON Lines — and returns the typed value (``None`` when the cell is
empty) or raises :class:`Invalid` naming the column and what is wrong with the
value. Parsers are built once per column, so the per-cell cost is one closure
call and the type's own conversion; they run for every cell of every file.

Text is strict on purpose: ``int()``, ``float()``, ``Decimal()`` and
``date.fromisoformat`` accept forms (``1_000``, ``NaN``, ``1e3``, ``20240101``,
non-ASCII digits) that a producer of a CSV almost certainly did not mean, so a
pattern is checked before the conversion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

__all__ = ["KINDS", "Invalid", "Kind", "Parser", "parser"]

Kind = Literal["string", "int", "decimal", "float", "date", "timestamp", "bool"]
KINDS: tuple[Kind, ...] = ("string", "int", "decimal", "float", "date", "timestamp", "bool")

Parser = Callable[[object], object]
"""A cell (``str``, JSON value or ``None``) → its typed value or ``None``; raises Invalid."""

_INT = re.compile(r"[+-]?\d+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT64 = 2**63
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_SHOWN = 60  # characters of a bad value quoted in a reason: enough to recognise it


class Invalid(ValueError):
    """A cell that does not satisfy its column; ``reason`` starts with the column's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    """A bad value as a reason quotes it: repr, shortened."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def parser(
    kind: Kind,
    *,
    name: str,
    required: bool,
    allowed: frozenset[str],
    minimum: Decimal | None,
    precision: int,
    scale: int,
) -> Parser:
    """The parser of a column named ``name``: blank → None (or Invalid if ``required``),
    else typed as ``kind``.

    The options mean what they do on a contract's column, which holds their defaults
    and checks they fit ``kind``: ``allowed`` values of a string, a numeric ``minimum``
    (inclusive), a decimal's ``precision`` and ``scale``.
    """
    # Only the options a kind uses reach its converter; the others do not apply to it.
    match kind:
        case "int":
            convert = _int(minimum)
        case "decimal":
            convert = _decimal(precision, scale, minimum)
        case "float":
            convert = _float(minimum)
        case _:
            convert = _PLAIN[kind]
    shown_allowed = ", ".join(sorted(allowed))

    def parse(value: object) -> object:
        if value is None or (type(value) is str and (not value or value.isspace())):
            if required:
                raise Invalid(f"{name}: required but missing")
            return None
        try:
            typed = convert(value)
        except Invalid as exc:
            raise Invalid(f"{name}: {show(value)} {exc.reason}") from None
        if allowed and typed not in allowed:
            raise Invalid(f"{name}: {show(value)} is not one of {shown_allowed}")
        return typed

    if kind != "string":
        return parse

    def parse_text(value: object) -> object:
        # Most cells of most files are plain text: answer them without a further call.
        if type(value) is str and value and (value in allowed if allowed else not value.isspace()):
            return value
        return parse(value)

    return parse_text


def _string(value: object) -> object:
    if type(value) is not str:
        raise Invalid("is not text")
    return value  # kept verbatim: leading spaces may be data in free text


def _int(minimum: Decimal | None) -> Parser:
    def convert(value: object) -> object:
        if type(value) is str:
            text = value.strip()
            if not _INT.fullmatch(text):
                raise Invalid("is not an integer")
            number = int(text)
        elif type(value) is int:
            number = value
        else:
            raise Invalid("is not an integer")
        if not -_INT64 <= number < _INT64:
            raise Invalid("does not fit in 64 bits")
        if minimum is not None and number < minimum:
            raise Invalid(f"is below the minimum {minimum}")
        return number

    return convert


def _decimal(precision: int, scale: int, minimum: Decimal | None) -> Parser:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)
    # Plain non-negative text that fits precision and scale needs none of the checks below.
    plain = re.compile(rf"\d{{1,{precision - scale}}}(?:\.\d{{0,{scale}}})?", re.ASCII)
    plain_ok = minimum is None or minimum <= 0

    def convert(value: object) -> object:
        if type(value) is str:
            if plain_ok and plain.fullmatch(value):
                return Decimal(value).quantize(quantum)
            text = value.strip()
            if not _DECIMAL.fullmatch(text):
                raise Invalid("is not a decimal number")
            number = Decimal(text)
        elif type(value) is int:
            number = Decimal(value)
        elif type(value) is float and math.isfinite(value):
            number = Decimal(repr(value))  # the shortest text that round-trips: 0.1, not 0.1000…
        else:
            raise Invalid("is not a decimal number")
        if abs(number) >= limit:
            raise Invalid(f"has more than {precision - scale} integer digits")
        exact = number.quantize(quantum)
        if exact != number:
            # Rounding money silently would change totals; the producer must say.
            raise Invalid(f"has more than {scale} decimal places")
        if minimum is not None and exact < minimum:
            raise Invalid(f"is below the minimum {minimum}")
        return exact

    return convert


def _float(minimum: Decimal | None) -> Parser:
    def convert(value: object) -> object:
        if type(value) is str:
            text = value.strip()
            if not _FLOAT.fullmatch(text):
                raise Invalid("is not a number")
            number = float(text)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            raise Invalid("is not a number")
        if not math.isfinite(number):
            raise Invalid("is not a finite number")
        if minimum is not None and number < minimum:
            raise Invalid(f"is below the minimum {minimum}")
        return number

    return convert


def _date(value: object) -> object:
    if type(value) is not str:
        raise Invalid("is not a date (YYYY-MM-DD)")
    text = value.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        raise Invalid("is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("is not a valid date (YYYY-MM-DD)") from None


def _timestamp(value: object) -> object:
    if type(value) is not str or not value.isascii():
        raise Invalid("is not an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid("is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        # A local time without its offset names no instant; guessing UTC would shift data.
        raise Invalid("has no UTC offset")
    return moment.astimezone(UTC)


def _bool(value: object) -> object:
    if type(value) is bool:
        return value
    if type(value) is str:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise Invalid("is not a boolean (true/false)")


_PLAIN: dict[Kind, Parser] = {
    "string": _string,
    "date": _date,
    "timestamp": _timestamp,
    "bool": _bool,
}
"""Converters of the kinds that take no option: the same function serves every column."""
