"""Every derived name — queues, keys, object-metadata keys, message headers — is computed here.

Renaming one of these renames it everywhere: the idempotency check, the loop
guard and the dead-letter tools all read the same constant.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_KEY_BYTES = 1024  # S3's limit on an object key
RESULT_NAME = "result.json"


class Meta:
    """Object-metadata keys bucketfn stamps on what it writes (S3 lower-cases them).

    ``FUNCTION`` on an output is the loop guard (an event for it never runs
    that function again); ``REVISION``, ``SEQUENCER`` and ``STATUS`` on a
    result record are what the duplicate and stale-event checks read.
    """

    FUNCTION = "bucketfn-function"
    FUNCTION_VERSION = "bucketfn-function-version"
    SOURCE_BUCKET = "bucketfn-source-bucket"
    SOURCE_KEY = "bucketfn-source-key"
    REVISION = "bucketfn-source-revision"
    SEQUENCER = "bucketfn-source-sequencer"
    STATUS = "bucketfn-status"


class Header:
    """AMQP message headers bucketfn sets (the ``x-*-death-reason`` ones are the broker's)."""

    EVENT_ID = "x-bucketfn-event-id"
    ATTEMPT = "x-bucketfn-attempt"
    KIND = "x-bucketfn-kind"
    FINGERPRINT = "x-bucketfn-fingerprint"
    FIRST_DEATH_REASON = "x-first-death-reason"
    LAST_DEATH_REASON = "x-last-death-reason"


def valid_function_name(name: str) -> bool:
    """Function names become queue names and key prefixes, so keep them plain."""
    return bool(_FUNCTION_NAME.match(name))


@dataclass(frozen=True, slots=True)
class Queues:
    """The queue names of one deployment; ``prefix`` keeps deployments apart
    on one broker (tests run beside a live runtime with a unique prefix)."""

    prefix: str = "bucketfn"

    @property
    def ingress(self) -> str:
        """Where MinIO's events arrive (bound to the events exchange)."""
        return f"{self.prefix}.ingress"

    @property
    def ingress_dlq(self) -> str:
        """Messages on the ingress that are not bucket events."""
        return f"{self.prefix}.ingress.dlq"

    def function(self, function: str) -> str:
        """The work queue of one function."""
        return f"{self.prefix}.fn.{function}"

    def dead_letter(self, function: str) -> str:
        """Where a function's events go when they cannot succeed."""
        return f"{self.prefix}.fn.{function}.dlq"

    def retry(self, function: str, delay_ms: int) -> str:
        """A delay tier: messages wait ``delay_ms`` then dead-letter back to the function."""
        return f"{self.prefix}.fn.{function}.retry.{delay_ms}ms"

    @property
    def rule_prefix(self) -> str:
        """Ids of the MinIO notification rules this deployment owns start with this."""
        return f"{self.prefix}:"


def safe_key(key: str) -> str:
    """Map a source key to a relative key that cannot escape its prefix.

    S3 keys are not paths, but tools that mirror buckets to disk treat them as
    such, so ``.``/``..``/empty segments and a leading ``/`` are escaped. Keys
    too long to nest under a prefix are shortened with a hash to stay unique.
    """
    escaped = {"": "%00", ".": "%2E", "..": "%2E%2E"}
    segments = [escaped.get(seg, seg) for seg in key.split("/")]
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
    return output_prefix(function, source_key) + RESULT_NAME
