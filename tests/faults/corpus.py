"""The hostile corpus: objects and broker messages built to break a runtime, each with its fate.

Every trigger the issue names is here: empty files, BOMs, NUL bytes, a gzip
bomb that would expand to 2 GiB, deep and duplicate-key JSON, invalid UTF-8,
huge lines, odd keys (unicode, spaces, percent signs, ``..`` look-alikes, keys
up to S3's 1,024 bytes, long non-ASCII keys), ingress garbage (not JSON, JSON
of the wrong shape, ``userMetadata`` as a list, huge and binary bodies), and
messages on a function's own queue that are not invocations. Each object must
end as a correct result or a dead letter that names its reason; each message as
a dead letter that names its reason, or — a well-formed event for an object
that is not there — dropped as superseded, or dead-lettered if S3 cannot name it.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib

import orjson

from functions.lake.demo import generate
from runtime import MIB
from tests.faults.load import Expect, Item, rows
from tests.faults.messages import Probe, messages

BOMB_MEMBER = 64 * 1024 * 1024  # NUL bytes per gzip member; 32 members make 2 GiB
BOMB_MEMBERS = 32


def bomb() -> bytes:
    """2 GiB of NUL bytes as 32 concatenated gzip members (about 2 MB): only bounds stop it."""
    member = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    one = member.compress(bytes(BOMB_MEMBER)) + member.flush()
    return one * BOMB_MEMBERS


def _csv(key: str, body: bytes, expect: Expect) -> Item:
    return Item(bucket="job-inputs", key=key, body=body, function="csv_row_count", expect=expect)


def _json(key: str, body: bytes, expect: Expect) -> Item:
    return Item(
        bucket="job-inputs", key=key, body=body, function="json_canonicalize", expect=expect
    )


def _raw(key: str, body: bytes, expect: Expect) -> Item:
    return Item(bucket="raw", key=key, body=body, function="to_staging", expect=expect)


def canonical(sha_of: bytes, records: int = 1) -> Expect:
    """``json_canonicalize`` wrote exactly ``sha_of`` (as canonical output) in ``records``."""
    digest = hashlib.sha256(sha_of).hexdigest()
    return Expect.result(
        f"canonical {sha_of[:30]!r}",
        lambda out: out["sha256"] == digest and out["records"] == records,
    )


def letter(reason: str) -> Expect:
    """A dead letter whose error contains ``reason``."""
    return Expect.letter(f"dead letter: {reason}", reason)


CSV_OK = b"id,note\n1,a\n2,b\n"
HEADER_TOO_LONG = "header too long"


def csv_objects(p: str) -> list[Item]:
    """CSV edge cases for ``csv_row_count`` under ``uploads/<p>/``."""
    u = f"uploads/{p}/csv"
    return [
        _csv(f"{u}/empty.csv", b"", rows(0)),
        _csv(f"{u}/header-only.csv", b"id,note\n", rows(0)),
        _csv(f"{u}/header-no-newline.csv", b"id,note", rows(0)),
        _csv(f"{u}/bom.csv", b"\xef\xbb\xbf" + CSV_OK, rows(2)),
        _csv(f"{u}/bom-only.csv", b"\xef\xbb\xbf", rows(0)),
        _csv(
            f"{u}/utf16.csv", "id,note\n1,a\n".encode("utf-16"), letter("header is not valid UTF-8")
        ),
        _csv(f"{u}/nul-in-body.csv", b"id\n1\x002\n3\n", rows(2)),
        _csv(f"{u}/nul-only.csv", bytes(2 * MIB), letter(HEADER_TOO_LONG)),
        _csv(f"{u}/nul-header.csv", b"i\x00d\n1\n", rows(1)),
        _csv(f"{u}/bad-utf8-body.csv", b"id\n\xff\xfe\n\xc3\x28\n", rows(2)),
        _csv(f"{u}/bad-utf8-header.csv", b"i\xffd\n1\n", letter("header is not valid UTF-8")),
        _csv(f"{u}/unterminated.csv", b'id\n"abc\n', letter("unterminated quoted field")),
        _csv(f"{u}/crlf.csv", b"id,note\r\n1,a\r\n2,b\r\n", rows(2)),
        _csv(f"{u}/blank-lines.csv", b"id\n\n1\n\n\n2\n", rows(2)),
        _csv(f"{u}/quoted-newlines.csv", b'id,n\n1,"a\nb\nc"\n2,"x""y"\n', rows(2)),
        _csv(f"{u}/huge-line.csv", b"id\n" + b"x" * (20 * MIB) + b"\n", rows(1)),
        _csv(f"{u}/huge-header.csv", b"h" * (2 * MIB) + b"\n1\n", letter(HEADER_TOO_LONG)),
        _csv(f"{u}/bare-cr-header.csv", b"a\rb\n1\n", letter("header is not one")),
        _csv(f"{u}/only-newlines.csv", b"\n\n\n", rows(0)),
        _csv(f"{u}/no-final-newline.csv", b"id\n1\n2", rows(2)),
        _csv(f"{u}/gz.csv.gz", gzip.compress(CSV_OK), rows(2)),
        _csv(f"{u}/gz-multi.csv.gz", gzip.compress(b"id\n1\n") + gzip.compress(b"2\n"), rows(2)),
        _csv(f"{u}/gz-empty.csv.gz", b"", rows(0)),
        _csv(
            f"{u}/gz-truncated.csv.gz", gzip.compress(CSV_OK * 50)[:-12], letter("truncated gzip")
        ),
        _csv(f"{u}/gz-not-gzip.csv.gz", b"id\n1\n", letter("corrupt gzip")),
        _csv(f"{u}/gz-bomb.csv.gz", bomb(), letter(HEADER_TOO_LONG)),
    ]


ODD_NAMES = (
    "データ 2026",
    "📈 emoji",
    "e\u0301 combining",
    "\u202eevil rtl",
    "．．",
    "fullwidth／slash",
    "a b  c",
    " leading space",
    "trailing space ",
    "100%",
    "%2F",
    "%2E%2E",
    "%2E",
    "%00",
    "%25",
    "a%20b",
    "+plus+",
    "a+b",
    "q?x=1&y=2",
    "hash#frag",
    "semi;colon",
    'quote"s',
    "apos'",
    "<angle>",
    "back\\slash",
    "tab\there",
    "new\nline",
    "..dots",
    "dots..",
    "...",
    "~tilde",
    "*star",
    "[brackets]",
    "{braces}",
    "a:b",
)


def long_key(head: str, total: int, suffix: str = ".csv") -> str:
    """A key of exactly ``total`` bytes: ``head``, then 250-byte segments, then ``suffix``."""
    left, segs = total - len(head.encode()) - len(suffix), []
    while left > 0:
        n = min(250, left)
        segs.append("k" * (n - 1) + "/" if left > n else "k" * n)
        left -= n
    return head + "".join(segs) + suffix


def odd_keys(p: str) -> list[Item]:
    """Keys S3 accepts but paths and URL encodings trip over; each a small CSV and JSON."""
    out: list[Item] = []
    base = f"uploads/{p}/keys"
    for i, name in enumerate(ODD_NAMES):
        out.append(_csv(f"{base}/{i:02d}/{name}.csv", CSV_OK, rows(2)))
        out.append(
            _json(f"{base}/{i:02d}/{name}.json", b'{"b":1,"a":2}', canonical(b'{"a":2,"b":1}'))
        )
    # `a/../b` cannot be stored (MinIO refuses `..` segments) but its escape can,
    # beside the segment it escapes to: two objects, two records.
    out.append(_csv(f"{base}/pair/%2E%2E/b.csv", CSV_OK, rows(2)))
    out.append(_csv(f"{base}/pair/%252E%252E/b.csv", b"id\n1\n", rows(1)))
    # Long keys, up to S3's 1,024 bytes, in segments MinIO takes (≤ 255 bytes each).
    out.extend(
        _csv(long_key(f"{base}/long{n}/", n), CSV_OK, rows(2)) for n in (825, 900, 1000, 1024)
    )
    # Long non-ASCII keys: percent-encoded lineage would be three times as long.
    for n in (60, 80):
        name = "/".join(["é" * n] * 3)
        out.append(_csv(f"{base}/utf/{name}.csv", CSV_OK, rows(2)))
        out.append(_json(f"{base}/utf/{name}.json", b"[1,2]", canonical(b"[1,2]")))
    return out


def json_objects(p: str) -> list[Item]:
    """JSON and JSON Lines edge cases for ``json_canonicalize``."""
    u = f"uploads/{p}/json"
    deep_ok = b"[" * 500 + b"]" * 500
    deep_bad = b"[" * 100_000 + b"]" * 100_000
    big = orjson.dumps({"s": "x" * (20 * MIB)})
    return [
        _json(f"{u}/empty.json", b"", letter("unexpected end of the JSON text")),
        _json(f"{u}/ws.json", b"  \n ", letter("unexpected end of the JSON text")),
        _json(f"{u}/true.json", b"true", canonical(b"true")),
        _json(f"{u}/null.json", b"null", canonical(b"null")),
        _json(f"{u}/str.json", b'"s"', canonical(b'"s"')),
        _json(f"{u}/num.json", b"1.50", canonical(b"1.5")),
        _json(
            f"{u}/obj.json",
            b'{"b":[1,{"d":1,"c":2}],"a":null}',
            canonical(b'{"a":null,"b":[1,{"c":2,"d":1}]}'),
        ),
        _json(f"{u}/bom.json", b"\xef\xbb\xbf{}", letter("expected a JSON value")),
        _json(f"{u}/nul-escaped.json", b'"a\\u0000b"', canonical(b'"a\\u0000b"')),
        _json(f"{u}/nul-raw.json", b'"a\x00b"', letter("invalid control character")),
        _json(f"{u}/nul-trailing.json", b"{}\x00", letter("unexpected content after")),
        _json(f"{u}/dup.json", b'{"a":1,"a":2}', letter("duplicate key")),
        _json(f"{u}/dup-nested.json", b'{"x":{"a":1,"b":2,"a":3}}', letter("duplicate key")),
        _json(f"{u}/dup-escaped.json", b'{"a":1,"\\u0061":2}', letter("duplicate key")),
        _json(f"{u}/deep-ok.json", deep_ok, canonical(deep_ok)),
        _json(f"{u}/deep-100k.json", deep_bad, letter("depth limit exceeded")),
        _json(f"{u}/bad-utf8.json", b'{"a":"\xff"}', letter("invalid UTF-8")),
        _json(f"{u}/overlong-utf8.json", b'"\xc0\xaf"', letter("invalid UTF-8")),
        _json(f"{u}/surrogate.json", b'"\\ud800"', letter("surrogate")),
        _json(f"{u}/big-int.json", b"9007199254740993", letter("2^53")),
        _json(f"{u}/nan.json", b"NaN", letter("NaN and Infinity are not JSON")),
        _json(f"{u}/overflow.json", b"1e400", letter("number overflows a double")),
        _json(f"{u}/trailing.json", b"{} {}", letter("unexpected content after")),
        _json(f"{u}/truncated.json", b'{"a": [1, 2', letter("unexpected end of the JSON text")),
        _json(f"{u}/big-doc.json", big, canonical(big)),
        _json(f"{u}/lines-empty.jsonl", b"", canonical(b"", records=0)),
        _json(f"{u}/lines.jsonl", b'{"b":1,"a":2}\n[3]\n', canonical(b'{"a":2,"b":1}\n[3]\n', 2)),
        _json(
            f"{u}/lines-crlf.ndjson", b'{"b":1}\r\n{"a":2}\r\n', canonical(b'{"b":1}\n{"a":2}\n', 2)
        ),
        _json(
            f"{u}/lines-bad.jsonl", b'{"a":1}\n{oops}\n', letter("expected a string key (at line 2")
        ),
        _json(f"{u}/lines-dup.jsonl", b'{"a":1,"a":1}\n', letter("duplicate key")),
        _json(
            f"{u}/lines-nul.jsonl", b'{"a":1}\n\x00\n', letter("expected a JSON value (at line 2")
        ),
        _json(
            f"{u}/lines-huge.jsonl", b"[" + b"1," * (9 * MIB) + b"1]\n", letter("line longer than")
        ),
        _json(f"{u}/lines-bad-utf8.jsonl", b'"\xff"\n', letter("invalid UTF-8")),
    ]


def lake_objects(p: str) -> list[Item]:
    """Raw files for ``to_staging``: bad bytes and bad shapes; good ones under odd keys."""
    r = f"orders/{p}"
    good, want = generate(rows=30, bad_fraction=0.1, duplicates=1, seed=7)
    staged = Expect.result("staged", lambda out: out["read"] == want.read)
    header = b"order_id,customer_id,order_date,amount,currency,status\n"
    return [
        _raw(f"{r}/good.csv", good, staged),
        _raw(f"{r}/bom.csv", b"\xef\xbb\xbf" + good, staged),
        _raw(f"{r}/gz.csv.gz", gzip.compress(good), staged),
        _raw(f"{r}/{'ü' * 70}/{'ß' * 70}/long-non-ascii.csv", good, staged),
        _raw(f"{r}/odd key 100%.csv", good, staged),
        _raw(f"{r}/empty.csv", b"", letter("the file is empty")),
        _raw(f"{r}/missing-columns.csv", b"order_id\n1\n", letter("lacks required columns")),
        _raw(f"{r}/repeated.csv", header.rstrip() + b",status\n", letter("repeats columns")),
        _raw(
            f"{r}/bad-utf8.csv",
            header + b"1,c\xff,2024-01-01,1,EUR,placed\n",
            letter("not UTF-8 text"),
        ),
        _raw(
            f"{r}/unterminated.csv",
            header + b'1,"c,2024-01-01,1,EUR,placed\n',
            letter("unterminated"),
        ),
        _raw(
            f"{r}/huge-line.csv",
            header + b"1," + b"x" * (17 * MIB) + b"\n",
            letter("line longer than"),
        ),
        _raw(f"{r}/bomb.csv.gz", bomb(), letter("line longer than")),
        _raw(
            f"{r}/truncated.jsonl.gz",
            gzip.compress(b'{"a":1}\n' * 500)[:-20],
            letter("truncated gzip"),
        ),
        _raw(f"{p}-nodataset.csv", good, letter("must start with")),
        _raw(f"unknownds/{p}/x.csv", good, letter("unknown dataset")),
        Item(
            bucket="staging",
            key=f"orders/{p}/not-parquet.parquet",
            body=b"PAR1 but not really",
            function="to_curated",
            expect=letter("not a staging file"),
        ),
    ]


def corpus(p: str) -> tuple[list[Item], list[Probe]]:
    """Every hostile object and message, under ``p`` (unique per run)."""
    return [*csv_objects(p), *odd_keys(p), *json_objects(p), *lake_objects(p)], messages(p)
