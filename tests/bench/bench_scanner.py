"""Throughput of ``functions.csv_count.scanner.RecordCounter`` against ``csv.reader``.

Run ``python tests/bench/bench_scanner.py [MB]``; ``make bench`` imports ``measure``.
The document has 8 columns (integers, words, decimals, timestamps, some non-ASCII)
and CRLF record ends; 5% of fields are quoted text holding one or two LFs, a
tenth of those with an escaped ``""``. It is fed to the counter in 1 MiB
chunks sliced beforehand, as an S3 body arrives; csv.reader gets a smaller
prefix of it, decoded through ``io.TextIOWrapper`` as it would be in a function.

The counter runs its native core where it built (``native`` names the kernel);
``reference_gb_s`` is the pure-Python reference on the same chunks. The whole
document is bigger than the caches, so ``counter_gb_s`` reads every chunk from DRAM
and is capped by its bandwidth (one core here: ~9-12 GB/s for a bare AVX2 LF count).
In a function a chunk has just been written by the socket read and is in cache:
``counter_cached_gb_s`` measures that, a stream of the same size made of the pool of
rows (whole records) repeated, so that its 1 MiB chunks stay in cache.
"""

from __future__ import annotations

import csv
import gc
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from functions.csv_count.scanner import RecordCounter, ReferenceRecordCounter

_COLUMNS = 8
_WORDS = ["alpha", "beta", "gamma", "delta", "Zürich", "São Paulo", "東京", "naïve", "ok"]
_TEXT = ["lorem", "ipsum", "dolor", "sit", "amet,", "consectetur", "café", "élan"]


def _plain(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return str(rng.randint(0, 10 ** rng.randint(1, 9)))
    if shape == 1:
        return rng.choice(_WORDS)
    if shape == 2:
        return f"{rng.uniform(0, 1000):.3f}"
    return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z"


def _quoted(rng: random.Random) -> str:
    lines = [
        " ".join(rng.choice(_TEXT) for _ in range(rng.randint(2, 6)))
        for _ in range(rng.randint(2, 3))
    ]
    if rng.random() < 0.1:
        lines[0] += ' "quoted"'
    return '"' + "\n".join(lines).replace('"', '""') + '"'


def make_document(
    size: int = 200_000_000, *, quoted: float = 0.05, seed: int = 4180
) -> tuple[bytes, int, int]:
    """A CSV just over ``size`` bytes: (document, data records, bytes of one pool).

    Rows come from a pool of 20,000 repeated whole, so any multiple of the pool
    length past the header is a record boundary.
    """
    rng = random.Random(seed)
    header = ",".join(f"col{i}" for i in range(_COLUMNS)) + "\r\n"
    rows = [
        ",".join(_quoted(rng) if rng.random() < quoted else _plain(rng) for _ in range(_COLUMNS))
        + "\r\n"
        for _ in range(20_000)
    ]
    pool = "".join(rows).encode()
    repeats = size // len(pool) + 1
    return header.encode() + pool * repeats, len(rows) * repeats, len(pool)


def _median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _count(chunks: list[bytes], counter_class: type[RecordCounter] = RecordCounter) -> int:
    counter = counter_class()
    for chunk in chunks:
        counter.feed(chunk)
    return counter.finish().rows


def _csv_count(data: bytes) -> int:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    return sum(1 for row in csv.reader(text) if row) - 1


def measure(
    size: int = 200_000_000,
    *,
    chunk_size: int = 1 << 20,
    csv_size: int = 20_000_000,
    quoted: float = 0.05,
    runs: int = 3,
    seed: int = 4180,
) -> dict[str, Any]:
    """GB/s (10**9 bytes/s, median of ``runs``) of RecordCounter (native, from DRAM
    and in cache), its pure-Python reference and csv.reader, and whether their counts
    agree with each other and with the generator."""
    doc, records, pool = make_document(size, quoted=quoted, seed=seed)
    chunks = [doc[i : i + chunk_size] for i in range(0, len(doc), chunk_size)]
    header = doc.index(b"\r\n") + 2
    prefix = doc[: header + pool * max(1, (csv_size - header) // pool)]
    rows = doc[header : header + pool]  # whole records: any number of them is a stream
    repeats = (len(doc) - header) // pool
    cached = [doc[:header]] + [rows[i : i + chunk_size] for i in range(0, pool, chunk_size)]
    cached = cached[:1] + cached[1:] * repeats
    cached_bytes = sum(map(len, cached))
    counted = _count(chunks)
    reference_counted = _count(chunks, ReferenceRecordCounter)
    cached_counted = _count(cached)
    csv_counted = _csv_count(prefix)
    prefix_counted = _count([prefix[i : i + chunk_size] for i in range(0, len(prefix), chunk_size)])
    counter_s = _median_seconds(lambda: _count(chunks), runs)
    cached_s = _median_seconds(lambda: _count(cached), runs)
    reference_s = _median_seconds(lambda: _count(chunks, ReferenceRecordCounter), runs)
    csv_s = _median_seconds(lambda: _csv_count(prefix), runs)
    return {
        "bytes": len(doc),
        "chunk_size": chunk_size,
        "quotes_per_mib": round(doc.count(b'"') / (len(doc) / (1 << 20))),
        "native": _kernel(),
        "rows": counted,
        "counts_agree": (
            counted == reference_counted == records
            and cached_counted == repeats * 20_000
            and prefix_counted == csv_counted
        ),
        "counter_gb_s": round(len(doc) / counter_s / 1e9, 3),
        "counter_cached_gb_s": round(cached_bytes / cached_s / 1e9, 3),
        "reference_gb_s": round(len(doc) / reference_s / 1e9, 3),
        "native_vs_reference": round(reference_s / counter_s, 1),
        "csv_bytes": len(prefix),
        "csv_gb_s": round(len(prefix) / csv_s / 1e9, 3),
        "speedup": round((len(doc) / counter_s) / (len(prefix) / csv_s), 1),
    }


def _kernel() -> str | None:
    """The native kernel RecordCounter scans with; None: the pure-Python reference."""
    if not RecordCounter.native:
        return None
    from functions.csv_count import _scan

    return _scan.KERNEL


def main() -> None:
    """Print the figures; exit non-zero if the counts disagree."""
    size = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 200_000_000
    result = measure(size)
    for name, value in result.items():
        print(f"{name:>20}: {value}")
    if not result["counts_agree"]:
        sys.exit("RecordCounter and csv.reader disagree")


if __name__ == "__main__":
    main()
