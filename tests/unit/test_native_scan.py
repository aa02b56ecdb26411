"""The native record counter (functions/csv_count/_scan.c) against the pure-Python reference.

The reference in scanner.py is what tests/unit/test_scanner.py pins against ``csv``;
here every native kernel must give the very same outcome (rows, header, bytes, or the
same error at the same offset) on the adversarial corpus and on random data, wherever
the chunks are cut, and the same carried state after every chunk.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from functions.csv_count import scanner
from functions.csv_count.error import CsvFormatError
from functions.csv_count.scanner import RecordCounter, ReferenceRecordCounter
from tests.unit.test_scanner import ADVERSARIAL, BOM, chunkings, pieces, rfc_document

ROOT = Path(__file__).resolve().parents[2]

if scanner.NATIVE_BUILT:
    from functions.csv_count import _scan

    KERNELS: tuple[str, ...] = _scan.KERNELS
else:  # every test fails, see below; the parametrized ones too, rather than skip
    KERNELS = ("not built",)


@pytest.fixture(autouse=True)
def _native_core_built() -> None:
    # A failure, not a skip: on this machine the extension must have built.
    if not scanner.NATIVE_BUILT:
        pytest.fail("functions.csv_count._scan did not build (see setup.py)")


class NativeRecordCounter(RecordCounter):
    """Scans with the C core whatever BUCKETFN_NATIVE_SCAN says."""

    __slots__ = ()
    native = True


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_the_native_core_is_built_and_in_use() -> None:
    assert scanner.NATIVE_BUILT
    forced_off = os.environ.get("BUCKETFN_NATIVE_SCAN", "1") == "0"
    assert scanner.NATIVE is not forced_off
    assert RecordCounter.native is not forced_off
    assert NativeRecordCounter.native
    assert not ReferenceRecordCounter.native
    assert _scan.KERNELS[-2:] == ("portable", "bytes")
    if {"avx2", "pclmulqdq", "popcnt", "bmi1", "bmi2"} <= cpu_flags():
        assert _scan.KERNEL == "avx2"


def test_a_native_counter_never_runs_the_python_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the pure-Python scan ran")

    monkeypatch.setattr(RecordCounter, "_scan", refuse)
    counter = NativeRecordCounter()
    counter.feed(b'h\n1,"a\nb"\n' * 1000)
    assert counter.finish().rows == 1000 * 2 - 1


def test_native_true_where_it_did_not_build_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "_NATIVE_SCAN", None)
    with pytest.raises(ValueError, match="not built"):
        NativeRecordCounter()
    reference = ReferenceRecordCounter()
    reference.feed(b"h\n1\n")
    assert reference.finish().rows == 1


def test_the_environment_turns_it_off() -> None:
    code = "from functions.csv_count import scanner as s; print(s.NATIVE, s.RecordCounter.native)"
    for value, expected in (("0", "False False"), ("1", "True True")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "BUCKETFN_NATIVE_SCAN": value},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        assert out.stdout.split() == expected.split()


def test_the_reference_alone_still_passes_the_scanner_suite() -> None:
    # test_scanner.py runs on the native core by default; the reference must keep
    # passing it on its own, or it is no reference.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_scanner.py",
        ],
        env={**os.environ, "BUCKETFN_NATIVE_SCAN": "0"},
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout


# Differential tests, for every kernel this machine runs.


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Native counters in this test use the kernel named by the parameter."""
    name: str = request.param
    monkeypatch.setattr(scanner, "_NATIVE_SCAN", functools.partial(_scan.scan, kernel=name))
    return name


Outcome = tuple[object, ...]


def counter_class(native: bool) -> type[RecordCounter]:
    return NativeRecordCounter if native else ReferenceRecordCounter


def outcome(chunks: Iterable[bytes], *, native: bool, **options: int) -> Outcome:
    counter = counter_class(native)(**options)
    try:
        for chunk in chunks:
            counter.feed(chunk)
        result = counter.finish()
    except CsvFormatError as exc:
        return ("error", exc.reason, exc.offset)
    return (result.rows, result.columns, result.bytes)


def both(data: bytes, cuts: Sequence[int] = (), **options: int) -> tuple[Outcome, Outcome]:
    return (
        outcome(pieces(data, cuts), native=True, **options),
        outcome(pieces(data, cuts), native=False, **options),
    )


def state(counter: RecordCounter) -> tuple[object, ...]:
    """What a counter carries to the next chunk. ``_open_at`` only where it can matter:
    the reference leaves it stale after a closed field, the native core does not."""
    reopenable = counter._in_quotes or counter._after_quote
    return (
        counter._total,
        counter._rows,
        counter._in_quotes,
        counter._record,
        counter._after_quote,
        counter._open_at if reopenable else None,
        counter._header is None,
    )


def assert_same_state_after_every_chunk(chunks: Sequence[bytes]) -> None:
    native, reference = NativeRecordCounter(), ReferenceRecordCounter()
    for index, chunk in enumerate(chunks):
        failures = []
        for counter in (native, reference):
            try:
                counter.feed(chunk)
            except CsvFormatError as exc:
                failures.append((exc.reason, exc.offset))
        assert failures in ([], failures[:1] * 2), (index, failures)
        if failures:
            return
        assert state(native) == state(reference), (index, chunks)


CORPUS = {
    **ADVERSARIAL,
    "unterminated after escapes": b'h\n"a"\n"b"",c\n',
    "unterminated many escapes": b'h\n"a""""""b\n',
    "unterminated header": b'"open header\n1\n',
    "bom then unterminated": BOM + b'h\n1\n"',
    "bare quote toggles": b'h\nab"c\n1\n"\n2\n',
    "lone cr is data": b"h\n1\r2\n3\n\r\r\n\r",
    "header that csv splits differently": b'ab"c,d\ne"\n1\n',
    "header not utf-8": b"a,\xff\n1\n",
    "invalid utf-8 in the body": b"h\n\xff\xfe\n\xc3\n",
    "blank lines at block edges": b"h\n" + b"x" * 60 + b"\n\r\n\n" + b"y" * 61 + b"\r\n\r\n1\n",
    "quotes only": b'h\n""""""""\n"""""""\n',
    "crs only": b"h\n" + b"\r" * 200,
    "lfs only": b"h\n" + b"\n" * 200,
    "crlfs only": b"h\n" + b"\r\n" * 100 + b"1",
}


@pytest.mark.parametrize("data", CORPUS.values(), ids=CORPUS.keys())
def test_corpus_at_every_single_split_point(kernel: str, data: bytes) -> None:
    # The first and last 600 of a long one: the middle of "long field" is all alike.
    for cut in sorted(
        {*range(min(len(data), 600)), *range(max(0, len(data) - 600), len(data) + 1)}
    ):
        native, reference = both(data, [cut])
        assert native == reference, (kernel, cut)


@pytest.mark.parametrize("data", CORPUS.values(), ids=CORPUS.keys())
def test_corpus_at_many_chunkings_state_after_every_chunk(kernel: str, data: bytes) -> None:
    for cuts in chunkings(data, seed=len(data)):
        native, reference = both(data, cuts)
        assert native == reference, (kernel, cuts)
        assert_same_state_after_every_chunk(list(pieces(data, cuts)))


def test_every_pair_of_split_points_of_small_inputs(kernel: str) -> None:
    small = [d for d in CORPUS.values() if len(d) <= 48]
    assert len(small) > 20
    for data in small:
        for first in range(len(data) + 1):
            for second in range(first, len(data) + 1):
                native, reference = both(data, [first, second])
                assert native == reference, (kernel, data, first, second)


def noise(rng: random.Random, size: int) -> bytes:
    """Bytes where every special byte is frequent, in runs: quotes, CR, LF, commas."""
    alphabet = rng.choice([b'a"\r\n,', b'"\n', b"\r\n", b'x"\r\n', b'a""\n\n\r', b'a,\n"'])
    out = bytearray()
    while len(out) < size:
        out += bytes([rng.choice(alphabet)]) * rng.choice([1, 1, 1, 2, 3, 64])
    return bytes(out[:size])


def quoted_csv(rng: random.Random, records: int) -> bytes:
    """Records with quoted fields holding LF, CRLF, lone CR and escaped quotes; blank
    lines; CRLF, LF and (as data) lone CR; a last record with or without its end."""
    fields = [b"1", b"abc", b"", b"\r", b" ", b'"q"', b'"a\nb"', b'"x\r\ny"', b'"\r"', b'""""']
    fields += [b'"' + b"\n" * 70 + b'"', b"a\rb", b'"' + b"z" * 130 + b'"', b"\xc3\xa9"]
    out = [b"h1,h2,h3\r\n"]
    for _ in range(records):
        if rng.random() < 0.1:
            out.append(rng.choice([b"\n", b"\r\n"]))
            continue
        out.append(b",".join(rng.choice(fields) for _ in range(rng.randint(1, 4))))
        out.append(rng.choice([b"\n", b"\r\n", b"\r\n", b"\n"]))
    if rng.random() < 0.5:
        out.pop()
    return b"".join(out)


def random_cuts(rng: random.Random, size: int, most: int = 12) -> list[int]:
    if size < 2:
        return []
    return sorted(rng.sample(range(1, size), rng.randint(1, min(size - 1, most))))


def test_random_noise_at_random_chunkings(kernel: str) -> None:
    rng = random.Random(64)
    errors = 0
    for _ in range(1500):
        data = b"h\n" + noise(rng, rng.randrange(0, 400))
        for cuts in ([], random_cuts(rng, len(data)), random_cuts(rng, len(data), 3)):
            native, reference = both(data, cuts)
            assert native == reference, (kernel, data, cuts)
            errors += native[0] == "error"
    assert errors > 100  # unterminated quotes are exercised, and their offsets


def test_random_noise_state_after_every_chunk(kernel: str) -> None:
    rng = random.Random(65)
    for _ in range(600):
        data = noise(rng, rng.randrange(0, 600))
        assert_same_state_after_every_chunk(list(pieces(data, random_cuts(rng, len(data)))))


def test_random_quoted_csvs_in_chunks_of_every_awkward_size(kernel: str) -> None:
    rng = random.Random(4180)
    for _ in range(12):
        data = quoted_csv(rng, rng.randrange(50, 2000))
        expected = outcome([data], native=False)
        assert isinstance(expected[0], int)
        assert expected[0] > 0
        for size in (1, 7, 63, 64, 65, 127, 1000, 4096, scanner_gil_size() + 1, len(data)):
            cuts = range(size, len(data), size)
            assert outcome(pieces(data, cuts), native=True) == expected, (kernel, size)
        for _ in range(5):
            assert outcome(pieces(data, random_cuts(rng, len(data))), native=True) == expected


def test_random_rfc4180_documents(kernel: str) -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = rfc_document(rng)
        for cuts in ([], *(random_cuts(rng, len(data)) for _ in range(3))):
            native, reference = both(data, cuts)
            assert native == reference, (kernel, data, cuts)


def test_large_document_in_stream_sized_chunks(kernel: str) -> None:
    rng = random.Random(1)
    data = b"".join(quoted_csv(rng, 3000) for _ in range(40))  # a few MB, headers as data
    expected = outcome([data], native=False)
    for size in (1 << 20, (1 << 20) + 1, 1 << 16, 333_333):
        assert outcome(pieces(data, range(size, len(data), size)), native=True) == expected
    assert outcome([data], native=True) == expected


def test_a_long_quoted_field_open_across_many_chunks(kernel: str) -> None:
    body = b'1,"' + b"a\nb\r\n" * 20_000 + b'""' + b"c\n" * 20_000
    for tail, rows in ((b'"\n2\n', 2), (b"", None)):
        data = b"h\n" + body + tail
        chunks = list(pieces(data, range(1000, len(data), 4099)))
        native = outcome(chunks, native=True)
        assert native == outcome(chunks, native=False)
        assert native[0] == (rows if rows is not None else "error")
        if rows is None:
            assert native[2] == 4  # where the field opened, across every chunk and ""


# The kernels against each other and against a spelled-out model, state for state.


def model(data: bytes, offset: int, state: tuple[bool, int, bool, int]) -> tuple[object, ...]:
    """What ``_scan.scan`` returns, one byte at a time, as _scan.c's header says."""
    in_quotes, record, after_quote, open_at = state
    record = 2 if in_quotes else record
    rows = 0
    for index, byte in enumerate(data):
        if in_quotes:
            in_quotes = byte != 0x22
        elif byte == 0x0A:
            rows += record == 2
            record = 0
        elif byte == 0x0D:
            record = 1 if record == 0 else 2
        else:
            if byte == 0x22:
                in_quotes = True
                open_at = open_at if after_quote else offset + index
            record = 2
        after_quote = byte == 0x22
    return rows, in_quotes, record, after_quote, open_at


def random_states(rng: random.Random) -> Iterator[tuple[bool, int, bool, int]]:
    for in_quotes in (False, True):
        for record in (0, 1, 2):
            yield in_quotes, record, rng.random() < 0.5, rng.randrange(-1, 1000)


def test_every_kernel_matches_the_model_from_every_state() -> None:
    rng = random.Random(3)
    for _ in range(400):
        size = rng.choice([rng.randrange(0, 70), rng.randrange(0, 600)])
        data = noise(rng, size + 64)
        start = rng.randrange(0, 64)  # unaligned too
        view = memoryview(data)[start : start + size]
        offset = rng.randrange(0, 1 << 40)
        for begin in random_states(rng):
            expected = model(bytes(view), offset, begin)
            for name in KERNELS:
                assert _scan.scan(view, offset, *begin, kernel=name) == expected, (name, begin)


def test_kernels_agree_on_big_buffers_that_release_the_gil() -> None:
    rng = random.Random(5)
    data = noise(rng, 3 << 20) + quoted_csv(rng, 20_000)
    begin = (False, 0, False, -1)
    results = {name: _scan.scan(data, 10, *begin, kernel=name) for name in KERNELS}
    assert len(set(results.values())) == 1, results
    assert len(data) >= _scan.RELEASE_GIL_FROM


def test_scan_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="record state"):
        _scan.scan(b"x", 0, False, 3, False, -1)
    with pytest.raises(ValueError, match="no kernel"):
        _scan.scan(b"x", 0, False, 0, False, -1, kernel="sse9")
    with pytest.raises(ValueError, match="offset"):
        _scan.scan(b"x", -1, False, 0, False, -1)
    with pytest.raises(BufferError):
        _scan.scan(memoryview(b"abcd")[::2], 0, False, 0, False, -1)
    with pytest.raises(TypeError):
        _scan.scan("text", 0, False, 0, False, -1)  # type: ignore[arg-type]
    assert _scan.scan(bytearray(b'a\n"'), 5, False, 0, False, -1) == (1, True, 2, True, 7)


def scanner_gil_size() -> int:
    return _scan.RELEASE_GIL_FROM if KERNELS else 16384


def test_the_scan_releases_the_gil() -> None:
    # While one long scan runs (the byte-by-byte kernel: slowest, same GIL handling),
    # a Python thread keeps running. Were the GIL held, that thread could not take a
    # single step between the scan's first and last moments.
    data = bytes(32 << 20)
    ticks: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            for _ in range(200):
                pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        while not ticks:
            time.sleep(0.001)
        start = time.perf_counter()
        result = _scan.scan(data, 0, False, 0, False, -1, kernel="bytes")
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    assert result == (0, False, 2, False, -1)
    assert end - start > 0.02, "the scan was too quick to tell"
    middle = [t for t in ticks if start + (end - start) * 0.2 < t < end - (end - start) * 0.2]
    assert len(middle) > 10, (len(middle), end - start)
