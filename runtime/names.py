"""Every derived name (queues, output keys) is computed here and nowhere else."""

from __future__ import annotations

import hashlib
import re

PREFIX = "bucketfn"
INGRESS = f"{PREFIX}.ingress"
INGRESS_DLQ = f"{PREFIX}.ingress.dlq"

_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_KEY_BYTES = 1024  # S3's limit on an object key


def valid_function_name(name: str) -> bool:
    """Function names become queue names and key prefixes, so keep them plain."""
    return bool(_FUNCTION_NAME.match(name))


def function_queue(function: str) -> str:
    """The work queue of one function."""
    return f"{PREFIX}.fn.{function}"


def dead_letter_queue(function: str) -> str:
    """Where a function's events go when they cannot succeed."""
    return f"{PREFIX}.fn.{function}.dlq"


def retry_queue(function: str, delay_ms: int) -> str:
    """A delay tier: messages wait ``delay_ms`` then dead-letter back to the function."""
    return f"{PREFIX}.fn.{function}.retry.{delay_ms}ms"


def safe_key(key: str) -> str:
    """Map a source key to a relative key that cannot escape its prefix.

    S3 keys are not paths, but tools that mirror buckets to disk treat them as
    such, so ``.``/``..``/empty segments and a leading ``/`` are escaped. Keys
    too long to nest under a prefix are shortened with a hash to stay unique.
    """
    segments = []
    for seg in key.split("/"):
        if seg in ("", ".", ".."):
            seg = "%" + seg.replace(".", "2E") if seg else "%00"
        segments.append(seg)
    out = "/".join(segments)
    if len(out.encode()) > MAX_KEY_BYTES - 200:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        out = out.encode()[: MAX_KEY_BYTES - 300].decode(errors="ignore") + "~" + digest
    return out


def output_prefix(function: str, source_key: str) -> str:
    """``<function>/<source key>/``: where one invocation's record and files live."""
    return f"{function}/{safe_key(source_key)}/"


def result_key(function: str, source_key: str) -> str:
    """The durable record of the latest invocation for one source object."""
    return output_prefix(function, source_key) + "result.json"
