"""RFC 8785 (JSON Canonicalization Scheme) at orjson speed, byte-exact.

orjson parses and serializes; Python only touches what orjson gets wrong for
RFC 8785, and checks what orjson lets through:

* numbers: orjson prints the same shortest round-trip digits as ECMAScript, and
  the same text except for integral floats (``100.0``), ``1e-6 <= |x| < 1e-5``
  and ``1e16 <= |x| < 1e21``; only those floats are rewritten;
* key order: code-point order (orjson's ``OPT_SORT_KEYS``) equals UTF-16 order
  unless one key has a character in U+E000–U+FFFF where another has an astral
  one; only such objects are ordered here;
* I-JSON: orjson rejects invalid UTF-8, lone surrogates, NaN, overflow and
  trailing content; ``OPT_STRICT_INTEGER`` rejects integers beyond 2**53 - 1;
  duplicate keys (orjson keeps the last) and integer literals beyond 64 bits
  (orjson makes them floats) are caught by cheap byte counts and scans.

Any violation is re-read by a slow, exact locator that says where it is.

Before all that, a native core (``_jcs``, Rust, built by setup.py where a Rust
toolchain is present) canonicalizes without building Python objects and without
the GIL. It only accelerates: whatever it refuses — any error, deep nesting,
possible integer literals beyond 64 bits — takes the path above, which stays the
reference the native core is differentially tested against.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from operator import methodcaller
from typing import Any, overload

import orjson

from functions.common.lines import MAX_LINE_BYTES, too_long
from functions.json_canonical.locator import CanonicalError, locate_or, raise_located
from runtime import offload

_native: Callable[[bytes], bytes | None] | None
try:
    from functions.json_canonical._jcs import canonicalize as _native
except ImportError:  # built without Rust: the pure-Python path does everything
    _native = None

__all__ = [
    "NATIVE",
    "CanonicalError",
    "canonicalize",
    "canonicalize_lines",
    "format_number",
    "reference_canonicalize",
]

NATIVE = _native is not None
"""Whether the native core was built and is tried first."""

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_MAX_SAFE = 2**53 - 1
# Pausing the cyclic GC halves orjson's parse time on big documents; below this
# size the pause is not worth the global side effect.
_GC_PAUSE_BYTES = 1 << 16
_BLANK = b" \t\r"

_HIGH_CHAR = re.compile("[\ue000-\U0010ffff]")
# re finds a two-byte prefix faster than ``bytes.__contains__`` does.
_ESCAPE = re.compile(rb"\\u")
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
_ESCAPED_BMP_HIGH = re.compile(rb"\\u[eEfF]")
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abAB]")
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_LONG_RUN = b"0" * 19
_utf16 = methodcaller("encode", "utf-16-be")


def format_number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of ``value``, as RFC 8785 requires."""
    if not math.isfinite(value):
        raise CanonicalError(f"{value} has no JSON form")
    return _es_number(value).decode()


def _es_number(value: float) -> bytes:
    if value == 0:
        return b"0"
    # orjson writes the shortest round-trip digits (as repr does, 7x faster);
    # only their layout differs from ECMAScript's.
    text = orjson.dumps(value)
    sign = b""
    if text[0] == 0x2D:
        sign, text = b"-", text[1:]
    mantissa, _, exponent = text.partition(b"e")
    whole, _, fraction = mantissa.partition(b".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip(b"0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip(b"0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + b"0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + b"." + digits[point:]
    if -6 < point <= 0:
        return sign + b"0." + b"0" * -point + digits
    exp = point - 1
    fraction = b"." + digits[1:] if k > 1 else b""
    return b"%s%c%se%c%d" % (sign, digits[0], fraction, 0x2B if exp > 0 else 0x2D, abs(exp))


def canonicalize(document: bytes, *, max_bytes: int | None = None) -> bytes:
    """The RFC 8785 form of one JSON text, or ``CanonicalError`` saying where it fails.

    CPU-bound (about 1 s per 50 MB): from a coroutine, run it with
    ``runtime.offload`` (``json_canonicalize`` does).
    """
    if max_bytes is not None and len(document) > max_bytes:
        raise CanonicalError(
            f"document is {len(document)} bytes, over the limit of {max_bytes}",
            offset=max_bytes,
        )
    if _native is not None and (out := _native(document)) is not None:
        return out
    return reference_canonicalize(document)


def reference_canonicalize(document: bytes) -> bytes:
    """``canonicalize`` in Python and orjson alone: the reference, and every error's path."""
    if len(document) < _GC_PAUSE_BYTES or not gc.isenabled():
        return _canonicalize(document)
    gc.disable()
    try:
        # The parsed tree dies when _canonicalize returns, before the GC is back,
        # so the collector never has to scan it.
        return _canonicalize(document)
    finally:
        gc.enable()


def _canonicalize(doc: bytes) -> bytes:
    try:
        tree = orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        offset = len(doc.decode("utf-8", "replace")[: exc.pos].encode())
        raise locate_or(doc, exc.msg, offset) from None
    escapes = b"\\" in doc and _ESCAPE.search(doc) is not None
    holder = [tree]  # the root's parent, so the root is rewritten like any value
    reorder, huge = _prepare(holder, _may_reorder(doc, escapes))
    if huge and _has_long_integer(doc):
        raise_located(doc)
    try:
        out = _serialize(holder, reorder, budget=2 * len(doc) + 65536)
    except orjson.JSONEncodeError:
        # orjson refuses to write more than 254 levels (it reads 1024) and
        # integers beyond 2**53 - 1: retry without the first, then locate.
        try:
            out = _emit_all(holder[0], reorder)
        except orjson.JSONEncodeError:
            raise locate_or(doc, "integer beyond ±(2^53-1)", None) from None
    # Each member has one ':' outside strings and strings keep theirs, so the
    # counts differ exactly when orjson dropped a duplicate member. Escaped
    # colons become literal ones; should an escaped backslash make us count
    # one too many, that only costs a locator run.
    escaped = len(_ESCAPED_COLON.findall(doc)) if escapes else 0
    if doc.count(b":") + escaped != out.count(b":"):
        raise_located(doc)
    return out


def _may_reorder(doc: bytes, escapes: bool) -> bool:
    """Whether the text has both a U+E000–U+FFFF and an astral character (a superset)."""
    if not (b"\xee" in doc or b"\xef" in doc or (escapes and _ESCAPED_BMP_HIGH.search(doc))):
        return False
    astral = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")
    return any(lead in doc for lead in astral) or bool(escapes and _ESCAPED_SURROGATE.search(doc))


def _has_long_integer(doc: bytes) -> bool:
    """Whether a run of 19+ digits may be an integer literal (orjson reads those
    beyond 64 bits as floats); a superset, the locator decides."""
    zeroed = doc.translate(_DIGITS_TO_ZERO)
    start = zeroed.find(_LONG_RUN)
    while start >= 0:
        end = start + len(_LONG_RUN)
        while start and doc[start - 1] in b"- \t\r\n":
            start -= 1
        if not start or doc[start - 1] in b":,[":
            return True
        start = zeroed.find(_LONG_RUN, end)
    return False


# (parent, key or index, object, its keys in UTF-16 order)
_Reorder = tuple[Any, Any, dict[str, Any], tuple[str, ...]]


def _prepare(holder: list[Any], check_keys: bool) -> tuple[list[_Reorder], bool]:
    """Rewrite floats in place; return the objects needing UTF-16 order (ancestors
    first), and whether a float may come from an integer literal beyond 64 bits."""
    reorder: list[_Reorder] = []
    huge = False
    good_keys: set[str] = set()
    orders: dict[frozenset[str], tuple[str, ...] | None] = {}
    stack: list[Any] = [holder]
    pop, push = stack.pop, stack.append
    # One flat loop, no call per value: this walk is most of the Python time.
    while stack:
        node = pop()
        for key, value in node.items() if type(node) is dict else enumerate(node):
            kind = type(value)
            if kind is float:
                if value.is_integer():
                    if -9007199254740992.0 < value < 9007199254740992.0:  # 2**53
                        node[key] = int(value)  # exact, and -0.0 becomes 0
                    else:
                        huge = huge or not -9.2e18 < value < 1.8e19
                        if -1e21 < value < 1e21:
                            node[key] = orjson.Fragment(_es_number(value))
                elif -1e-5 < value < 1e-5 and not -1e-6 < value < 1e-6:
                    node[key] = orjson.Fragment(_es_number(value))
            elif kind is dict:
                push(value)
                if check_keys and not good_keys.issuperset(value):
                    order = _utf16_order(value, good_keys, orders)
                    if order:
                        reorder.append((node, key, value, order))
            elif kind is list:
                push(value)
    return reorder, huge


def _utf16_order(
    node: dict[str, Any],
    good_keys: set[str],
    orders: dict[frozenset[str], tuple[str, ...] | None],
) -> tuple[str, ...] | None:
    """The keys in UTF-16 order if that differs from code-point order, else None.

    ``good_keys`` collects keys without a character from U+E000 on; ``orders``
    remembers the answer per key set, as records tend to share their keys.
    """
    shape = frozenset(node)
    if shape in orders:
        return orders[shape]
    for key in node:
        if key not in good_keys and not _HIGH_CHAR.search(key):
            good_keys.add(key)
    order = tuple(sorted(node, key=_utf16))
    orders[shape] = result = None if list(order) == sorted(node) else order
    return result


def _serialize(holder: list[Any], reorder: list[_Reorder], *, budget: int) -> bytes:
    """orjson for everything; objects needing UTF-16 order become fragments first,
    innermost first, unless nesting makes their copies outgrow ``budget`` bytes."""
    spent = 0
    for parent, key, node, order in reversed(reorder):
        ordered = {}
        for name in order:
            value = node[name]
            if type(value) is dict or type(value) is list:
                value = orjson.Fragment(orjson.dumps(value, option=_OPTS))
            ordered[name] = value
        rendered = orjson.dumps(ordered, option=orjson.OPT_STRICT_INTEGER)
        spent += len(rendered)
        if spent > budget:
            return _emit_all(holder[0], reorder)
        parent[key] = orjson.Fragment(rendered)
    return orjson.dumps(holder[0], option=_OPTS)


def _emit_all(tree: Any, reorder: list[_Reorder]) -> bytes:
    """Write every container here and only scalars with orjson: linear however
    deep the nesting, unlike orjson (254 levels) or nested fragments."""
    orders = {id(node): order for _, _, node, order in reorder}
    out: list[bytes] = []
    todo: list[Any] = [tree]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is bytes:
            out.append(item)
        elif kind is not dict and kind is not list:
            out.append(orjson.dumps(item, option=_OPTS))
        elif not item:
            out.append(b"{}" if kind is dict else b"[]")
        elif kind is dict:
            parts: list[Any] = [b"}"]
            for key in reversed(orders.get(id(item)) or sorted(item)):
                parts += (item[key], b"," + orjson.dumps(key) + b":")
            parts[-1] = b"{" + parts[-1][1:]
            todo += parts
        else:
            parts = [b"]"]
            for value in reversed(item):
                parts += (value, b",")
            parts[-1] = b"["
            todo += parts
    return b"".join(out)


@overload
def canonicalize_lines(
    chunks: AsyncIterable[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[bytes]: ...
@overload
def canonicalize_lines(
    chunks: Iterable[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[bytes]: ...
def canonicalize_lines(
    chunks: AsyncIterable[bytes] | Iterable[bytes],
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> AsyncIterator[bytes] | Iterator[bytes]:
    """Canonicalize JSON Lines as they stream in, one record at a time.

    ``chunks`` may split lines (and UTF-8 characters) anywhere; an async iterable
    (``ctx.read(event)``) gives an async iterator, a plain one a plain iterator.
    Each record comes out as its RFC 8785 form plus ``b"\\n"``; blank lines are
    skipped. Memory holds one line and one chunk: a line longer than
    ``max_line_bytes`` (``MAX_LINE_BYTES`` of :mod:`functions.common.lines` unless
    told) is a ``CanonicalError``, as is any bad record, its ``line`` counting
    from 1 and its byte offset counting within that line.
    """
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be positive, not {max_line_bytes}")
    if isinstance(chunks, AsyncIterable):
        return _lines_async(chunks, max_line_bytes)
    return _lines_sync(chunks, max_line_bytes)


def _lines_sync(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    lines = _Lines(limit)
    for chunk in chunks:
        yield from lines.feed(chunk)
    yield from lines.close()


async def _lines_async(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    lines = _Lines(limit)
    async for chunk in chunks:
        # Off the event loop: a chunk of records is milliseconds of pure Python.
        for line in await offload(lines.feed, chunk):
            yield line
    for line in lines.close():
        yield line


class _Lines:
    """The sync core of ``canonicalize_lines``: split, bound, canonicalize.

    It splits raw bytes, each line straight from the chunk (see
    :mod:`functions.common.lines` for why it is not the lake's splitter).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = bytearray()  # the unfinished line
        self._number = 0  # lines finished so far

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._pending:
                self._pending += chunk[start:end]
                line = bytes(self._pending)
                self._pending.clear()
            else:
                line = chunk[start:end]
            self._emit(line, out)
            start = end + 1
        self._check(len(self._pending) + len(chunk) - start)
        self._pending += memoryview(chunk)[start:]
        return out

    def close(self) -> list[bytes]:
        out: list[bytes] = []
        if self._pending:
            line = bytes(self._pending)
            self._pending.clear()
            self._emit(line, out)
        return out

    def _check(self, length: int) -> None:
        if length > self._limit:
            raise CanonicalError(too_long(self._limit), line=self._number + 1, offset=self._limit)

    def _emit(self, line: bytes, out: list[bytes]) -> None:
        self._check(len(line))
        self._number += 1
        if not line or (line[0] in _BLANK and not line.strip(_BLANK)):
            return
        try:
            out.append(canonicalize(line) + b"\n")
        except CanonicalError as exc:
            raise CanonicalError(
                exc.reason, pointer=exc.pointer, offset=exc.offset, line=self._number
            ) from None
