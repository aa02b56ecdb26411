"""RecordCounter against Python's csv module, at every chunking we can think of."""

from __future__ import annotations

import csv
import io
import pickle
import random
import tracemalloc
from collections.abc import Iterator, Sequence

import pytest

from functions.csv_count.error import CsvFormatError
from functions.csv_count.scanner import CsvCount, RecordCounter
from runtime.core.errors import PERMANENT, InputError

BOM = b"\xef\xbb\xbf"


def oracle(data: bytes) -> tuple[int, tuple[str, ...]]:
    """(data records, header) the way the product contract defines them, via csv."""
    text = data.decode("utf-8-sig")
    records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    if not records:
        return 0, ()
    return len(records) - 1, tuple(records[0])


def pieces(data: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    start = 0
    for cut in cuts:
        yield data[start:cut]
        start = cut
    yield data[start:]


def count(data: bytes, cuts: Sequence[int] = (), **options: int) -> CsvCount:
    counter = RecordCounter(**options)
    for chunk in pieces(data, cuts):
        counter.feed(chunk)
    return counter.finish()


def every(step: int, data: bytes) -> list[int]:
    return list(range(step, len(data), step))


def random_cuts(rng: random.Random, data: bytes) -> list[int]:
    if len(data) < 2:
        return []
    return sorted(rng.sample(range(1, len(data)), rng.randint(1, min(len(data) - 1, 12))))


def chunkings(data: bytes, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    fixed = [every(step, data) for step in (1, 2, 3, 7)]
    return [*fixed, [], *(random_cuts(rng, data) for _ in range(5))]


ADVERSARIAL: dict[str, bytes] = {
    "empty": b"",
    "bom only": BOM,
    "blank lines only": b"\n\r\n\n",
    "bom and blank lines": BOM + b"\r\n\n",
    "header only": b"a,b,c\n",
    "header only, no newline": b"a,b,c",
    "header only, crlf": b"a,b,c\r\n",
    "simple lf": b"h1,h2\n1,2\n3,4\n",
    "simple crlf": b"h1,h2\r\n1,2\r\n3,4\r\n",
    "no trailing newline": b"h\n1\n2",
    "mixed terminators": b"h\r\n1\n2\r\n3\n4",
    "quoted newlines": b'h,t\n1,"multi\nline\r\ntext"\n2,"\n"\n',
    "quoted crlf at chunk edges": b'h\n"\r\n"\r\n"\r"\r\n"\n\r"\n',
    "escaped quotes": b'h\n"a""b",""""\n"""",x\n""\n',
    "empty quoted field is a record": b'h\n""\n""\r\n,\n',
    "quoted header with newline": b'"first\ncol","se""c"\n1,2\n',
    "leading blank lines": b"\n\r\n\nh\n1\n",
    "trailing blank lines": b"h\n1\n\n\r\n\n",
    "consecutive blank lines": b"h\n1\n\n\n\n2\r\n\r\n\r\n3\n",
    "blank lines between crlf and lf": b"h\r\n\n1\n\r\n2\r\n",
    "blank line right after header": b"h\n\n1\n",
    "spaces are not blank": b"h\n \n  \r\n\t\n",
    "blank lines inside quotes": b'h\n"\n\n\r\n\r\n"\n1\n',
    "bom then header": BOM + b"x,y\n1,2\n",
    "unicode": 'naïve,日本語,😀\n"é\n€",ü\n✓,"𝄞"""\n'.encode(),
    "unicode header split everywhere": "ñ,€€€,😀😀\n1,2,3\n".encode(),
    "quote at the very end": b'h\n1,""',
    "crlf then eof": b"h\n1\r\n",
    "lone cr at eof after blank": b"h\n1\n\r",
    "many empty fields": b",,,\n,,,\n\n,,,",
    "long field": b"h\n" + b'"' + b"x\n" * 5000 + b'"\n' + b"y" * 9000 + b"\n",
}


@pytest.mark.parametrize("data", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_inputs_match_csv_at_every_chunking(data: bytes) -> None:
    expected = oracle(data)
    for cuts in chunkings(data):
        result = count(data, cuts)
        assert (result.rows, result.columns) == expected, cuts
        assert result.bytes == len(data)


@pytest.mark.parametrize("data", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_inputs_match_csv_at_every_single_split_point(data: bytes) -> None:
    # One boundary at a time lands it between the quotes of "", the CR and LF of
    # CRLF, inside the BOM and inside multi-byte characters, with no other cut nearby.
    expected = oracle(data)
    for cut in range(1, min(len(data), 400)):
        result = count(data, [cut])
        assert (result.rows, result.columns) == expected, cut


def test_known_counts_without_the_oracle() -> None:
    assert count(b'h\n1,"a\nb"\n\n2\r\n\r\n3').rows == 3
    assert count(b"").columns == ()
    assert count(b'\n\n"a\nb",c\n1,2\n').columns == ("a\nb", "c")
    assert count(BOM + b"x\n1\n").columns == ("x",)
    assert count(BOM + b"x\n1\n").bytes == len(BOM) + 4


def rfc_field(rng: random.Random) -> str:
    parts = ["a", "b", "z", " ", ",", '"', "\r", "\n", "\r\n", "é", "日本", "😀", "x\ny"]
    text = "".join(rng.choice(parts) for _ in range(rng.randrange(0, 5)))
    if any(ch in text for ch in ',"\r\n') or rng.random() < 0.15:
        return '"' + text.replace('"', '""') + '"'
    return text


def rfc_document(rng: random.Random) -> bytes:
    """A random RFC 4180 document, with the blank lines and BOM the contract allows."""
    out = [BOM.decode()] if rng.random() < 0.2 else []
    out += [rng.choice(["\n", "\r\n"]) for _ in range(rng.choice([0, 0, 0, 1, 3]))]
    records = rng.randrange(0, 9)
    for index in range(records):
        out.append(",".join(rfc_field(rng) for _ in range(rng.randint(1, 4))))
        last = index == records - 1
        if not last or rng.random() < 0.6:
            out.append(rng.choice(["\n", "\r\n"]))
            while rng.random() < 0.2:
                out.append(rng.choice(["\n", "\r\n"]))
    return "".join(out).encode()


def test_random_rfc4180_documents_match_csv_at_random_chunkings() -> None:
    rng = random.Random(4180)
    rows = 0
    for _ in range(400):
        data = rfc_document(rng)
        expected = oracle(data)
        rows += expected[0]
        for cuts in [[], every(1, data), *(random_cuts(rng, data) for _ in range(4))]:
            result = count(data, cuts)
            assert (result.rows, result.columns) == expected, (data, cuts)
    assert rows > 800  # the generator makes real documents, not mostly empty ones


def test_random_documents_with_many_rows_in_large_chunks() -> None:
    rng = random.Random(7)
    # Joined by LF: a document may end without one, and `a` + `"b"` is not RFC 4180.
    data = b"\n".join(rfc_document(rng) for _ in range(300)).replace(BOM, b"")
    expected = oracle(data)
    assert expected[0] > 500
    for size in (64, 1000, 4096, len(data)):
        assert count(data, every(size, data)).rows == expected[0]


def outcome(data: bytes, cuts: Sequence[int]) -> tuple[object, ...]:
    try:
        result = count(data, cuts)
    except CsvFormatError as exc:
        return ("error", exc.reason, exc.offset)
    return (result.rows, result.columns)


def test_results_never_depend_on_chunking_even_outside_rfc4180() -> None:
    # No oracle here: bare quotes and lone CRs are in play, only invariance is checked.
    rng = random.Random(99)
    distinct = set()
    for _ in range(2000):
        data = bytes(rng.choice(b'a"\r\n,\xff') for _ in range(rng.randrange(0, 40)))
        expected = outcome(data, [])
        distinct.add(expected[0])
        for cuts in (every(1, data), every(2, data), random_cuts(rng, data)):
            assert outcome(data, cuts) == expected, (data, cuts)
    assert "error" in distinct
    assert len(distinct) > 5


@pytest.mark.parametrize("blank", [0.01, 0.4], ids=["rare blanks", "dense blanks"])
def test_blank_lines_among_many_rows_match_csv(blank: float) -> None:
    # Chunks without a blank line take the count-only path; those with a few
    # count them by regex, those with many by line list; a quoted LF-LF only looks
    # like a blank line. All must agree with csv wherever the chunk edges fall.
    rng = random.Random(11)
    rows = []
    for _ in range(3000):
        roll = rng.random()
        if roll < blank:
            rows.append(rng.choice([b"\n", b"\r\n"]))
        elif roll < blank + 0.01:
            rows.append(b'1,"a\n\r\n\nb"\r\n')
        elif roll < blank + 0.1:
            rows.append(b'2,"x\ny",z\r\n')
        else:
            rows.append(b"%d,abc,%d\r\n" % (rng.randrange(1000), rng.randrange(9)))
    data = b"h1,h2,h3\r\n" + b"".join(rows)
    expected = oracle(data)
    for size in (5, 64, 1000, 4096, len(data)):
        assert count(data, every(size, data)).rows == expected[0], size
    for _ in range(20):
        assert count(data, random_cuts(rng, data)).rows == expected[0]


def test_chunk_bigger_than_the_scan_window_counts_the_same() -> None:
    row = b'1,"two\nlines",3\r\n\n'
    data = b"a,b,c\n" + row * 400_000  # ~7 MB: scanned in more than one window
    assert count(data).rows == 400_000
    assert count(data, every(1 << 20, data)).rows == 400_000


def test_transient_memory_does_not_grow_with_the_chunk() -> None:
    data = b"h\n" + b"1234567\n" * (6 << 17)  # 6 MiB of short lines, fed at once
    counter = RecordCounter()
    tracemalloc.start()
    try:
        counter.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counter.finish().rows == 6 << 17
    assert peak < 16 << 20  # one line list for all of it would take ~40 MiB


def test_bytearray_and_memoryview_chunks() -> None:
    counter = RecordCounter()
    counter.feed(bytearray(b'h\n"x'))
    counter.feed(memoryview(b'y"\n2\n'))
    assert counter.finish() == CsvCount(rows=2, columns=("h",), bytes=9)


def test_finish_does_not_change_the_counter() -> None:
    counter = RecordCounter()
    counter.feed(b"h\n1\n2")
    assert counter.finish().rows == 2
    counter.feed(b"3\n4")
    assert counter.finish().rows == 3


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b'h\n1,"abc', 4),
        (b'h\n1,"a""b\n\n2\n', 4),
        (b'h\n"a"\n"b"",c\n', 6),
        (b'h\n"a""""""b\n', 2),
        (BOM + b'h\n1\n"', 7),
        (b'"open header\n1\n', 0),
        (b'\n\na,"b', 4),
        (b'x,"a""b\n1\n', 2),
    ],
)
def test_unterminated_quote_at_end_is_an_error_with_the_opening_offset(
    data: bytes, offset: int
) -> None:
    for cuts in chunkings(data):
        with pytest.raises(CsvFormatError) as caught:
            count(data, cuts)
        assert caught.value.offset == offset
        assert "unterminated" in caught.value.reason


def test_error_is_a_permanent_input_error() -> None:
    with pytest.raises(InputError) as caught:
        count(b'"')
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, PERMANENT)
    assert "byte 0" in str(caught.value)


def test_error_survives_pickling() -> None:
    error = CsvFormatError("header too long", 42)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.reason, copy.offset, str(copy)) == (
        CsvFormatError,
        "header too long",
        42,
        str(error),
    )


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"a,\xff\n1\n", 2),
        (BOM + b"\n\xc3(\n1\n", 4),
        (b"\xef\xbb", 0),  # a partial BOM at the end is content, not a BOM
        (b"ok,\xe6\x97", 3),  # truncated multi-byte character, header without newline
    ],
)
def test_header_that_is_not_utf8_is_an_error(data: bytes, offset: int) -> None:
    for cuts in chunkings(data):
        with pytest.raises(CsvFormatError) as caught:
            count(data, cuts)
        assert caught.value.offset == offset
        assert "UTF-8" in caught.value.reason


def test_invalid_utf8_after_the_header_is_counted_not_decoded() -> None:
    assert count(b"h\n\xff\xfe\n\xc3\n").rows == 2


def test_header_too_long_is_an_error_whatever_the_chunking() -> None:
    data = b"a" * 100 + b"\n1\n"
    for cuts in chunkings(data):
        with pytest.raises(CsvFormatError) as caught:
            count(data, cuts, max_header_bytes=64)
        assert caught.value.offset == 64
        assert "too long" in caught.value.reason
    assert count(data, max_header_bytes=100).rows == 1


def test_header_cap_counts_from_after_bom_and_blank_lines() -> None:
    data = BOM + b"\n\r\n" + b"h" * 10 + b"\n1\n"
    assert count(data, every(1, data), max_header_bytes=10).columns == ("h" * 10,)


def test_a_failed_counter_stays_failed() -> None:
    counter = RecordCounter(max_header_bytes=4)
    with pytest.raises(CsvFormatError):
        counter.feed(b"abcdef")
    with pytest.raises(CsvFormatError):
        counter.feed(b"\n1\n")
    with pytest.raises(CsvFormatError):
        counter.finish()


def test_max_header_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RecordCounter(max_header_bytes=0)


# Outside RFC 4180: the documented behaviour, pinned so that changing it is a decision.


def test_bare_quote_in_unquoted_field_toggles_quoting() -> None:
    # Parity reads `"c\n1\n"` as one quoted stretch; csv reads ab"c literally.
    assert count(b'h\nab"c\n1\n"\n2\n').rows == 2
    assert oracle(b'h\nab"c\n1\n"\n2\n')[0] == 3


def test_lone_cr_outside_quotes_is_data() -> None:
    assert count(b"h\n1\r2\n3\n").rows == 2


def test_header_that_csv_splits_differently_is_rejected() -> None:
    with pytest.raises(CsvFormatError, match="one RFC 4180 record"):
        count(b'ab"c,d\ne"\n1\n')
    for data in (b"\ra,b\n1\n", b"\r\r\na\n", b"\n\r\r\na\n"):
        for cuts in chunkings(data):
            with pytest.raises(CsvFormatError, match="one RFC 4180 record"):
                count(data, cuts)
