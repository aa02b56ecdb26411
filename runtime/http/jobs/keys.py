"""Which object keys and bucket names the API accepts, and why the others are refused.

S3 keys are opaque strings, but the programs around them are not: tools that
mirror a bucket to disk read ``/`` ``.`` ``..`` and ``\\`` as path syntax, some
clients percent-decode keys once more, and Unicode normalization turns a
fullwidth ``．．`` into ``..``. An upload key is therefore confined to the
upload prefix in every reading of it: as given, and NFKC-normalized; keys taken
literally, with no escapes to decode.

Keys of existing objects (a job's input) are held to less: any text S3 itself
would store, without control characters.
"""

from __future__ import annotations

import re
import unicodedata

from runtime.core.names import MAX_KEY_BYTES

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Bidirectional overrides and isolates make a key read differently than it sorts.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def object_key(key: str) -> str:
    """``key`` if S3 can store it and a person can read it; else ValueError saying why."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    if size == 0:
        raise ValueError("must not be empty")
    if size > MAX_KEY_BYTES:
        raise ValueError(f"must be at most {MAX_KEY_BYTES} bytes as UTF-8 (this is {size})")
    for char in key:
        if unicodedata.category(char) == "Cc" or char in _BIDI:
            raise ValueError(
                f"must not contain control or bidirectional-override characters "
                f"(found U+{ord(char):04X})"
            )
    return key


def upload_key(key: str, prefix: str) -> str:
    """``key`` if it names an object under ``prefix`` however it is read; else ValueError."""
    object_key(key)
    _confined(key, prefix, "")
    normalized = unicodedata.normalize("NFKC", key)
    if normalized != key:
        _confined(normalized, prefix, " once Unicode-normalized (NFKC)")
    return key


def _confined(key: str, prefix: str, reading: str) -> None:
    if not key.startswith(prefix) or key == prefix:
        raise ValueError(f"must name an object under {prefix!r}{reading}, e.g. '{prefix}data.csv'")
    if "\\" in key:
        raise ValueError(f"must not contain '\\'{reading}: some tools read it as a path separator")
    if _ESCAPE.search(key):
        raise ValueError(
            f"must not contain percent-escapes such as %2F{reading}: keys are taken "
            "literally, and a tool that decodes them would see another key"
        )
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise ValueError(
            f"must not contain empty, '.' or '..' segments{reading} "
            "(no leading, trailing or doubled '/')"
        )
