"""functions.json_canonical.canonical: byte-exact RFC 8785, located I-JSON errors, JSON Lines."""

from __future__ import annotations

import gc
import json
import math
import pickle
import random
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import rfc8785

from functions.json_canonical import canonical
from functions.json_canonical.canonical import (
    CanonicalError,
    canonicalize,
    canonicalize_lines,
    format_number,
)
from runtime.core.errors import InputError


@pytest.fixture(autouse=True, params=["native", "reference"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: native core first (as in production), and the reference.

    A native core that did not build fails the native runs rather than skipping them.
    """
    if request.param == "reference":
        monkeypatch.setattr(canonical, "_native", None)
    elif not canonical.NATIVE:
        pytest.fail("functions.json_canonical._jcs did not build (see setup.py)")
    return str(request.param)


# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript text.
APPENDIX_B = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


def _double(bits: int) -> float:
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


def _error(document: bytes, **kwargs: Any) -> CanonicalError:
    with pytest.raises(CanonicalError) as caught:
        canonicalize(document, **kwargs)
    return caught.value


# --- numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_format_number_matches_appendix_b(bits: int, expected: str) -> None:
    assert format_number(_double(bits)) == expected


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_appendix_b_numbers_as_json_literals(bits: int, expected: str) -> None:
    literal = repr(_double(bits)).encode()  # a float literal even where the value is integral
    assert canonicalize(literal) == expected.encode()
    assert canonicalize(b'{"n":[' + literal + b"]}") == b'{"n":[' + expected.encode() + b"]}"


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (b"100.0", b"100"),
        (b"-0", b"0"),
        (b"-0.0", b"0"),
        (b"0e10", b"0"),
        (b"1E+2", b"100"),
        (b"1e21", b"1e+21"),
        (b"1e20", b"100000000000000000000"),
        (b"1e16", b"10000000000000000"),
        (b"1e-7", b"1e-7"),
        (b"1e-6", b"0.000001"),
        (b"0.00001", b"0.00001"),
        (b"5e-6", b"0.000005"),
        (b"-9.5e-6", b"-0.0000095"),
        (b"1.5e300", b"1.5e+300"),
        (b"4.50", b"4.5"),
        (b"0.1e1", b"1"),
        (b"123456789012345.678", b"123456789012345.67"),
        (b"1e-400", b"0"),
        (b"9007199254740991", b"9007199254740991"),
        (b"-9007199254740991", b"-9007199254740991"),
        (b"9007199254740993.0", b"9007199254740992"),
        (b"18446744073709551616.0", b"18446744073709552000"),
        (b"-1.5e20", b"-150000000000000000000"),
        (b"[1.0,2.5,-3.0]", b"[1,2.5,-3]"),
    ],
)
def test_adversarial_numbers(literal: bytes, expected: bytes) -> None:
    assert canonicalize(literal) == expected


def test_format_number_rejects_nan_and_infinity() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(CanonicalError):
            format_number(value)


def test_format_number_agrees_with_rfc8785_on_random_doubles() -> None:
    rng = random.Random(1)
    checked = 0
    while checked < 20_000:
        value = _double(rng.getrandbits(64))
        if math.isfinite(value):
            assert format_number(value).encode() == rfc8785.dumps(value), value
            checked += 1


# --- RFC 8785's own examples --------------------------------------------------------


def test_rfc_section_3_2_2_example() -> None:
    document = rb"""{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonicalize(document) == expected


def test_rfc_section_3_2_3_sorts_keys_by_utf16_code_units() -> None:
    document = rb"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
    keys = list(json.loads(canonicalize(document)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonicalize(document).startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80"')


def test_astral_keys_sort_before_high_bmp_keys_everywhere() -> None:
    inner = {"\uffff": 1, "\U0001f600": 2, "\ue000": 3, "a": 4}
    obj: Any = {"z": [inner, {"x": inner}], "\U00010000": inner, "\uff01": [[inner]]}
    for ensure_ascii in (True, False):
        text = json.dumps(obj, ensure_ascii=ensure_ascii).encode()
        assert canonicalize(text) == rfc8785.dumps(obj)
    expected = '{"a":4,"😀":2,"\ue000":3,"\uffff":1}'.encode()
    assert canonicalize(json.dumps(inner).encode()) == expected


# --- strings ------------------------------------------------------------------------


def test_strings_are_minimally_escaped() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u2029é😀'
    assert canonicalize(json.dumps(text).encode()) == rfc8785.dumps(text)
    assert canonicalize(b'"\\u0001\\u001F\\b\\f"') == b'"\\u0001\\u001f\\b\\f"'
    assert canonicalize(b'"\\u00e9\\/\\ud83d\\ude00"') == '"é/😀"'.encode()


# --- I-JSON violations say where -------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "pointer", "offset"),
    [
        (b'{"a":1,"a":2}', "/a", 7),
        (b'{"x":[1,{"a":1,"b":{"c":1},"a":2}]}', "/x/1/a", 27),
        (b'{"a":1,"\\u0061":2}', "/a", 7),
        (b'[{"k":{"a:b":0}},{"a:b":1,"a\\u003Ab":2}]', "/1/a:b", 26),
        (b'{"a/b~":1, "a/b~" : 2}', "/a~1b~0", 11),
        (b'{"a":1,"a":2,"b":"\\u003a"}', "/a", 7),  # a kept colon balances a dropped one
    ],
)
def test_duplicate_keys(document: bytes, pointer: str, offset: int) -> None:
    error = _error(document)
    assert error.reason == "duplicate key"
    assert (error.pointer, error.offset) == (pointer, offset)
    assert error.where == f"{pointer}, byte {offset}"


@pytest.mark.parametrize(
    ("document", "pointer", "offset"),
    [
        (b"[9007199254740992]", "/0", 1),
        (b"[-9007199254740992]", "/0", 1),
        (b'{"id": 12345678901234567}', "/id", 7),
        (b'{"id":18446744073709551615}', "/id", 6),
        (b'{"id":18446744073709551616}', "/id", 6),
        (b'{"a":[1e300, 18446744073709551616]}', "/a/1", 13),
        (b'{"a":[1,\n -9223372036854775809]}', "/a/1", 10),
        (b"123456789012345678901234567890", "", 0),
        (b"[" + b"9" * 400 + b"]", "/0", 1),
    ],
)
def test_integers_beyond_2_53(document: bytes, pointer: str, offset: int) -> None:
    error = _error(document)
    assert "2^53" in error.reason
    assert (error.pointer, error.offset) == (pointer, offset)


@pytest.mark.parametrize(
    ("document", "reason", "pointer", "offset"),
    [
        (b'{"a":[1e400]}', "number overflows a double", "/a/0", 6),
        (b"-1.5E309", "number overflows a double", "", 0),
        (b'{"a":"\xff"}', "invalid UTF-8", "/a", 5),
        (b'{"k\xc0\x80":1}', "invalid UTF-8", "", 1),
        (b'{"a":1,"b\xff":1}', "invalid UTF-8", "", 7),
        (b'["ok","\xed\xa0\x80"]', "invalid UTF-8", "/1", 6),
        (b'{"a":"\\ud800"}', "lone surrogate escape", "/a", 5),
        (b'{"a":["\\udc00x"]}', "lone surrogate escape", "/a/0", 6),
        (b'["\\ud83d\\u0041"]', "lone surrogate escape", "/0", 1),
        (b"[NaN]", "NaN and Infinity are not JSON", "/0", 1),
        (b'{"x":-Infinity}', "NaN and Infinity are not JSON", "/x", 5),
        (b"[1] x", "unexpected content after the JSON text", "", 4),
        (b'{"a":1}{}', "unexpected content after the JSON text", "", 7),
        (b'{"a":[1,2', "unexpected end of the JSON text", "/a/1", 9),
        (b'{"a" 1}', "expected ':'", "/a", 5),
        (b"{a:1}", "expected a string key", "", 1),
        (b"[1,]", "expected a JSON value", "/1", 3),
        (b"[01]", "expected ',' or ']'", "/0", 2),
        (b'["a\x01"]', "invalid string: invalid control character", "/0", 3),
        (b'["abc', "invalid string: unterminated string starting", "/0", 1),
        (b'{"a":"\\x"}', "invalid string: invalid \\escape", "/a", 6),
        (b"", "unexpected end of the JSON text", "", 0),
        (b"\xef\xbb\xbf{}", "expected a JSON value", "", 0),
    ],
)
def test_invalid_json(document: bytes, reason: str, pointer: str, offset: int) -> None:
    error = _error(document)
    assert (error.reason, error.pointer, error.offset) == (reason, pointer, offset)
    assert isinstance(error, InputError)
    assert isinstance(error, ValueError)


def test_error_offset_counts_bytes_not_characters() -> None:
    error = _error('{"é":"€€","é":1}'.encode())
    assert (error.pointer, error.offset) == ("/é", 15)


def test_nesting_beyond_orjsons_limit_is_an_error_without_a_pointer() -> None:
    error = _error(b"[" * 1100 + b"]" * 1100)
    assert error.pointer == ""
    assert error.offset == 1025
    assert "depth" in error.reason


def test_max_bytes() -> None:
    assert canonicalize(b"[1, 2]", max_bytes=6) == b"[1,2]"
    error = _error(b"[1, 2 ]", max_bytes=6)
    assert "over the limit of 6" in error.reason
    assert error.offset == 6


def test_error_survives_pickling() -> None:
    error = _error(b'{"a":{"b":1,"b":2}}')
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.where, copy.pointer, copy.offset) == (
        "duplicate key",
        "/a/b, byte 12",
        "/a/b",
        12,
    )
    assert str(copy) == str(error) == "duplicate key (at /a/b, byte 12)"


# --- false alarms of the cheap checks still give the right bytes ------------------------


@pytest.mark.parametrize(
    "document",
    [
        b'{"a\\\\u003a":"x:y","b":"\\u003A"}',  # an escaped backslash before "u003a"
        b'{"big":1e300,"s":":1234567890123456789012"}',  # a digit run in a string
        b'{"big":-1e30,"n":[12345678901234567890.5]}',  # a long float literal
        b'{"k":"\\\\u003a","k2":"\\\\u003a"}',
    ],
)
def test_false_alarms_are_cleared(document: bytes) -> None:
    assert canonicalize(document) == rfc8785.dumps(json.loads(document))


# --- structure the fast path cannot take ------------------------------------------------


def test_deep_nesting_beyond_orjsons_writer() -> None:
    obj: Any = {"\ufb33": 1.0, "\U0001f600": [0.000005]}
    for depth in range(400):
        obj = [obj] if depth % 2 else {"k": obj, "\uffee": 1e16}
    text = json.dumps(obj).encode()
    assert canonicalize(text) == rfc8785.dumps(obj)


def test_nested_reordered_objects_stay_linear_and_exact() -> None:
    obj: Any = "x" * 100_000
    for level in range(40):
        obj = {"\ue000": level, "\U00010000": obj, "plain": [level + 0.5]}
    text = json.dumps(obj, ensure_ascii=False).encode()
    assert canonicalize(text) == rfc8785.dumps(obj)


def test_nested_reordered_objects_fall_back_to_the_linear_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    emit_all = canonical._emit_all

    def spy(tree: Any, reorder: Any) -> bytes:
        calls.append(len(reorder))
        return emit_all(tree, reorder)

    monkeypatch.setattr(canonical, "_emit_all", spy)
    reference = canonical.reference_canonicalize  # the path with the linear writer
    obj: Any = "y" * 50_000
    for level in range(20):
        obj = {"\uffee": level, "\U0001f600": obj}
    assert reference(json.dumps(obj).encode()) == rfc8785.dumps(obj)
    assert calls == [20]
    flat: Any = [{"\uffee": i, "\U0001f600": "y" * 1000} for i in range(100)]
    assert reference(json.dumps(flat).encode()) == rfc8785.dumps(flat)
    assert calls == [20]  # side by side, they need no fallback


def test_big_documents_pause_and_restore_the_gc() -> None:
    obj: Any = [{"n": i + 0.5, "f": float(i), "é": [i, -i]} for i in range(5000)]
    text = json.dumps(obj).encode()
    assert len(text) > 100_000
    reference = canonical.reference_canonicalize  # the path that pauses the GC
    assert gc.isenabled()
    assert reference(text) == rfc8785.dumps(obj)
    assert gc.isenabled()
    gc.disable()
    try:
        assert reference(text) == rfc8785.dumps(obj)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- differential against the rfc8785 package ----------------------------------------


def _float(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        value = _double(rng.getrandbits(64))
        return value if math.isfinite(value) else 0.5
    if kind == 1:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30)
    if kind == 2:
        return float(rng.randint(-(2**70), 2**70) >> rng.randrange(70))
    if kind == 3:
        return rng.choice(
            [0.0, -0.0, 1e21, 1e-7, 1e-6, 9.999999999999999e20, 5e-324, 2.0**53, 1e16, 5e-6]
        )
    if kind == 4:
        return round(rng.uniform(-1000, 1000), rng.randint(0, 4))
    return rng.random() * 1e-5


def _string(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randrange(0, 6)):
        kind = rng.randrange(6)
        if kind == 0:
            pieces.append(chr(rng.randrange(0x20)))
        elif kind == 1:
            pieces.append(rng.choice('"\\/:\x7f\u2028'))
        elif kind == 2:
            pieces.append(chr(rng.randrange(0x80, 0xD800)))
        elif kind == 3:
            pieces.append(chr(rng.randrange(0xE000, 0x10000)))
        elif kind == 4:
            pieces.append(chr(rng.randrange(0x10000, 0x110000)))
        else:
            pieces.append(rng.choice(["a", "key", "1", "€", "ö", "x y", "A"]))
    return "".join(pieces)


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(7 if depth < 4 else 5)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind == 6:
        return {_string(rng): _value(rng, depth + 1) for _ in range(rng.randrange(7))}
    scalars = [
        _float(rng),
        _float(rng),
        rng.randint(-(2**53) + 1, 2**53 - 1) >> rng.randrange(53),
        _string(rng),
        rng.choice([True, False, None, 0, -1]),
    ]
    return scalars[kind]


@pytest.mark.parametrize("seed", range(300))
def test_differential_against_rfc8785(seed: int, path: str) -> None:
    rng = random.Random(seed)
    obj = _value(rng, 0) if seed % 3 else [_value(rng, 0) for _ in range(50)]
    expected = rfc8785.dumps(obj)
    for ensure_ascii in (True, False):
        text = json.dumps(obj, ensure_ascii=ensure_ascii, indent=seed % 2 or None).encode()
        assert canonicalize(text) == expected
        if path == "native":
            # Taken by the native core itself, not handed to the reference: these
            # documents are I-JSON with no integer literal beyond 64 bits.
            assert canonical._native is not None
            assert canonical._native(text) == expected


def test_the_native_core_hands_what_it_does_not_take_to_the_reference(path: str) -> None:
    refused = [
        b'{"a": 1, "a": 2}',  # duplicate member: the reference says where
        b"[9007199254740992]",  # beyond 2^53 - 1
        b"[123456789012345678901234]",  # an integer literal beyond 64 bits
        b"[" * 200 + b"]" * 200,  # deeper than the native parser goes
        b'"\\ud800"',
        b"[1,]",
    ]
    if path == "native":
        assert canonical._native is not None
        assert [canonical._native(doc) for doc in refused] == [None] * len(refused)
    assert canonicalize(b"[" * 200 + b"]" * 200) == b"[" * 200 + b"]" * 200
    for doc in (refused[0], refused[1], refused[2], refused[4], refused[5]):
        with pytest.raises(CanonicalError):
            canonicalize(doc)


# --- JSON Lines ------------------------------------------------------------------------

RECORDS: list[Any] = [
    {"b": 1.0, "a": "é😀"},
    {"\ufb33": [1e21, -0.0], "\U0001f600": None},
    {"x": "line\nbreak", "n": 5e-6},
]
LINES_TEXT = (
    "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS[:2])
    + "\n\n  \r\n"
    + json.dumps(RECORDS[2], indent=None)
    + "\r\n"
).encode()
EXPECTED_LINES = [rfc8785.dumps(r) + b"\n" for r in RECORDS]


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        yield data[start:cut]
        start = cut


def test_lines_over_every_two_way_split() -> None:
    assert "é".encode() in LINES_TEXT  # so some cuts fall inside a UTF-8 character
    for cut in range(len(LINES_TEXT) + 1):
        assert list(canonicalize_lines(_split(LINES_TEXT, [cut]))) == EXPECTED_LINES


def test_lines_over_random_splits_and_one_byte_chunks() -> None:
    rng = random.Random(7)
    for _ in range(50):
        cuts = [rng.randrange(len(LINES_TEXT) + 1) for _ in range(rng.randrange(1, 12))]
        assert list(canonicalize_lines(_split(LINES_TEXT, cuts))) == EXPECTED_LINES
    one_by_one = (LINES_TEXT[i : i + 1] for i in range(len(LINES_TEXT)))
    assert list(canonicalize_lines(one_by_one)) == EXPECTED_LINES


async def _achunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_lines_from_an_async_stream() -> None:
    chunks = list(_split(LINES_TEXT, [3, 4, 30, 31, 32]))
    out = [line async for line in canonicalize_lines(_achunks(chunks))]
    assert out == EXPECTED_LINES


def test_last_line_without_newline_and_empty_input() -> None:
    assert list(canonicalize_lines([b'{"b":2,', b'"a":1}'])) == [b'{"a":1,"b":2}\n']
    assert list(canonicalize_lines([])) == []
    assert list(canonicalize_lines([b"\n\n", b"   \n"])) == []


def test_bad_line_reports_its_number() -> None:
    data = b'{"a":1}\n\n[1,2]\n{"a":1,"a":2}\n{"never":"read"}\n'
    out: list[bytes] = []
    with pytest.raises(CanonicalError) as caught:
        out.extend(canonicalize_lines(_split(data, [5, 20])))
    assert out == [b'{"a":1}\n', b"[1,2]\n"]
    error = caught.value
    assert (error.line, error.pointer, error.offset) == (4, "/a", 7)
    assert error.where == "line 4, /a, byte 7"


async def test_bad_line_in_an_async_stream() -> None:
    with pytest.raises(CanonicalError) as caught:
        async for _ in canonicalize_lines(_achunks([b"1\n2\n", b"[NaN]\n"])):
            pass
    assert caught.value.line == 3
    assert caught.value.reason == "NaN and Infinity are not JSON"


def test_line_longer_than_the_limit_fails_before_its_end() -> None:
    def endless() -> Iterator[bytes]:
        yield b"[1]\n"
        while True:
            yield b"[" + b"1," * 50

    with pytest.raises(CanonicalError) as caught:
        list(canonicalize_lines(endless(), max_line_bytes=1000))
    assert caught.value.line == 2
    assert "longer than 1000 bytes" in caught.value.reason
    assert list(canonicalize_lines([b"[1,2]\n"], max_line_bytes=5)) == [b"[1,2]\n"]
    with pytest.raises(CanonicalError):
        list(canonicalize_lines([b"[1, 2]\n"], max_line_bytes=5))


def test_lines_rejects_a_useless_limit() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        canonicalize_lines([], max_line_bytes=0)
