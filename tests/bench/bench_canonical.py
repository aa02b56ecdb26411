"""Throughput of ``functions.json_canonical.canonical.canonicalize`` against rfc8785 and orjson.

Run ``python tests/bench/bench_canonical.py [MB]``; ``make bench`` imports ``measure``.
The document is a list of records with many numbers of every shape (integers,
prices, integral floats, tiny and huge exponents) and non-ASCII keys; a share of
the records (1% unless told) also have keys that need UTF-16 rather than
code-point order, the one case orjson's key sort gets wrong.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import rfc8785

from functions.json_canonical.canonical import NATIVE, canonicalize, reference_canonicalize

_KEYS = ["id", "name", "größe", "価格", "ключ", "température", "数量", "€uro", "naïve", "ø"]
# U+FF58 and U+1F600 sort differently in UTF-16 and in code points.
_UTF16_KEYS = ["ｘ", "\U0001f600", "\U0001f4b6x"]


_SHAPES: list[Callable[[random.Random], Any]] = [
    lambda rng: rng.randint(-(2**53) + 1, 2**53 - 1),
    lambda rng: rng.randint(-1000, 100_000),
    lambda rng: round(rng.uniform(0, 1000), 2),
    lambda rng: float(rng.randint(0, 10_000)),
    lambda rng: rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30),
    lambda rng: rng.random(),
    lambda rng: rng.uniform(-1e6, 1e6),
    lambda rng: rng.choice([0.0, -0.0, 1e-7, 5e-6, 1e21, 1.5e300, 2.0**60]),
]


def _number(rng: random.Random) -> Any:
    return rng.choice(_SHAPES)(rng)


def _record(rng: random.Random, utf16_share: float) -> dict[str, Any]:
    keys = rng.sample(_KEYS, 8)
    if rng.random() < utf16_share:
        keys += _UTF16_KEYS
    record: dict[str, Any] = {key: _number(rng) for key in keys}
    record["name"] = rng.choice(["Zoë", "Jürgen", "東京", "x\ty\n", "emoji 😀"]) + str(rng.random())
    record["at"] = f"2024-05-{rng.randint(10, 31)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:00Z"
    record["values"] = [_number(rng) for _ in range(rng.randrange(1, 8))]
    record["meta"] = {"ok": rng.random() < 0.5, "note": None, "ratio": _number(rng)}
    return record


def make_document(size: int = 50_000_000, *, seed: int = 8785, utf16_share: float = 0.01) -> bytes:
    """A JSON array of records, just over ``size`` bytes, the same for the same arguments."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    total = 0
    while total < size:
        part = json.dumps(_record(rng, utf16_share), ensure_ascii=False).encode()
        parts.append(part)
        total += len(part) + 1
    return b"[" + b",".join(parts) + b"]"


def _seconds(run: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(
    size: int = 50_000_000, *, runs: int = 3, seed: int = 8785, utf16_share: float = 0.01
) -> dict[str, Any]:
    """MB/s (1 MB = 10**6 bytes, median of ``runs``) of the serializers on one
    generated document, whether ours matches rfc8785 byte for byte, and our speed
    relative to orjson's (which is not RFC 8785)."""
    doc = make_document(size, seed=seed, utf16_share=utf16_share)
    contenders: dict[str, Callable[[], object]] = {
        "canonicalize": lambda: canonicalize(doc),
        # The pure-Python and orjson path alone (where the native core did not build).
        "reference": lambda: reference_canonicalize(doc),
        "rfc8785": lambda: rfc8785.dumps(json.loads(doc)),
        "orjson_sorted": lambda: orjson.dumps(orjson.loads(doc), option=orjson.OPT_SORT_KEYS),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    # Rounds interleave the contenders so that a busy neighbour slows them alike.
    for _ in range(runs):
        for name, run in contenders.items():
            times[name].append(_seconds(run))
    speeds = {name: len(doc) / 1e6 / statistics.median(t) for name, t in times.items()}
    return {
        "bytes": len(doc),
        "byte_exact": canonicalize(doc) == rfc8785.dumps(json.loads(doc)),
        **{f"{name}_mb_s": round(speed, 1) for name, speed in speeds.items()},
        "vs_orjson": round(speeds["canonicalize"] / speeds["orjson_sorted"], 2),
        "native": NATIVE,
    }


def main() -> None:
    """Print the figures; exit non-zero if the output is not byte-exact.

    Arguments: document size in MB (50), share of records with UTF-16-order keys (0.01).
    """
    size = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 50_000_000
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    result = measure(size, utf16_share=share)
    for name, value in result.items():
        print(f"{name:>20}: {value}")
    if not result["byte_exact"]:
        sys.exit("canonicalize differs from rfc8785")


if __name__ == "__main__":
    main()
