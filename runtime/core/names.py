"""Every derived name — queues, keys, object-metadata keys, message headers — is computed here.

Renaming one of these renames it everywhere: the idempotency check, the loop
guard and the dead-letter tools all read the same constant.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from runtime.core.errors import ConfigError

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
    # An ingress dead letter keeps the raw body as it came; why, and when, ride here.
    REASON = "x-bucketfn-reason"
    RECEIVED_AT = "x-bucketfn-received-at"
    FIRST_DEATH_REASON = "x-first-death-reason"
    LAST_DEATH_REASON = "x-last-death-reason"


RESERVED_NAMES = frozenset({"jobs"})
"""Output-bucket prefixes bucketfn uses itself: a function of that name would share them."""


def valid_function_name(name: str) -> bool:
    """Function names become queue names and key prefixes, so keep them plain (and not ours)."""
    return bool(_FUNCTION_NAME.match(name)) and name not in RESERVED_NAMES


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
    def unrouted(self) -> str:
        """Where the events exchange's alternate exchange puts what no queue binds."""
        return f"{self.prefix}.unrouted"

    @property
    def runtime_user(self) -> str:
        """The RabbitMQ user the runtime runs as, limited to this deployment's names."""
        return f"{self.prefix}-runtime"

    @property
    def publisher_user(self) -> str:
        """The RabbitMQ user MinIO publishes as: the events exchange and nothing else."""
        return f"{self.prefix}-publisher"

    @property
    def dead_letter_reader(self) -> str:
        """An exclusive, auto-deleted queue: held by the one process reading the
        dead-letter queues whole for ``/metrics``, so two readers never interleave."""
        return f"{self.prefix}.dlq-reader"

    @property
    def sweep(self) -> str:
        """The sweep's lease: a single-active-consumer queue holding one token."""
        return f"{self.prefix}.sweep"

    def checkpoint(self, function: str, kind: str = "sweep") -> str:
        """Where the sweep (or backfill) of ``function`` remembers how far it got."""
        return f".bucketfn/{self.prefix}/{kind}/{function}.json"

    @property
    def feed(self) -> str:
        """The fanout *exchange* of live notes for ``bucketfn watch`` (no queue of its own).

        Under the prefix, so a deployment's feeds never mix and a broker user
        limited to ``<prefix>.*`` may declare and publish it.
        """
        return f"{self.prefix}.feed"

    @property
    def rule_prefix(self) -> str:
        """Ids of the MinIO notification rules this deployment owns start with this."""
        return f"{self.prefix}:"


def unrouted_exchange(exchange: str) -> str:
    """The alternate exchange of ``exchange`` (and the name of the policy that sets it).

    Derived from the events exchange, not a prefix: every deployment sharing
    the exchange sets the same policy, so none takes it from another.
    """
    return f"{exchange}.unrouted"


DEPLOYMENT_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
"""A deployment name: lower-case, so its MinIO target id (upper-cased) is one-to-one with it."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """The names one deployment owns on a MinIO and a RabbitMQ it shares with others.

    MinIO publishes each notification target's events with that target's one
    routing key, so a deployment of its own needs a target of its own: its rules
    point at its target, whose routing key only its ingress is bound to. The
    default, ``bucketfn``, keeps the names used before deployments had names.
    """

    name: str = "bucketfn"

    @property
    def routing_key(self) -> str:
        """The key MinIO publishes this deployment's events with (its ingress binding)."""
        return f"{self.name}.ingress"

    @property
    def target_id(self) -> str:
        """The MinIO AMQP target: ``notify_amqp:<ID>`` / ``MINIO_NOTIFY_AMQP_*_<ID>``."""
        return self.name.upper()

    def target_arn(self, region: str = "") -> str:
        """The ARN the notification rules name (MinIO's region is empty unless configured)."""
        return f"arn:minio:sqs:{region}:{self.target_id}:amqp"

    def settings(self) -> dict[str, str]:
        """The settings that follow the deployment's name unless set explicitly."""
        return {
            "deployment": self.name,
            "queue_prefix": self.name,
            "routing_key": self.routing_key,
            "minio_target_arn": self.target_arn(),
        }

    def identity(self, role: str) -> str:
        """The MinIO user — and its policy — ``role`` (runtime, api) runs as."""
        return f"{self.name}-{role}"


_ESCAPED = {"": "%00", ".": "%2E", "..": "%2E%2E"}
# A literal segment that already looks like an escape (or an escaped escape) gets
# one more "%25", so two different keys never share an output key.
_LOOKS_ESCAPED = re.compile(r"^(%25)*(%00|%2E|%2E%2E)$")
MAX_SEGMENT_BYTES = 255  # what MinIO (and file systems mirroring a bucket) accept per segment


def _segment(seg: str) -> str:
    if seg in _ESCAPED:
        return _ESCAPED[seg]
    if _LOOKS_ESCAPED.match(seg):
        return "%25" + seg
    raw = seg.encode()
    if len(raw) > MAX_SEGMENT_BYTES:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        return raw[: MAX_SEGMENT_BYTES - 40].decode(errors="ignore") + "~" + digest
    return seg


def safe_key(key: str) -> str:
    """Map a source key to a relative key that cannot escape its prefix, injectively.

    S3 keys are not paths, but tools that mirror buckets to disk treat them as
    such, so ``.``/``..``/empty segments are escaped (a leading ``/`` makes an
    empty first segment), and a literal segment that looks like an escape is
    escaped once more, so two keys never share one ``result.json``. Segments
    longer than MinIO accepts, and keys too long to nest under a prefix, are
    shortened with a hash of the original to stay unique.
    """
    out = "/".join(_segment(seg) for seg in key.split("/"))
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


JOB_PREFIX = "jobs/"
"""Where jobs created through the API keep their request and record, in the output bucket."""
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
"""A job id: 32 lowercase hex digits, so it is safe as a key segment as it stands."""
JOB_NAME = "job.json"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def valid_job_id(job_id: str) -> bool:
    """Job ids become key segments; only the API's own shape is accepted."""
    return bool(_JOB_ID.match(job_id))


def job_prefix(job_id: str) -> str:
    """``jobs/<job_id>/``: one job's request and record (never derived from a source key)."""
    if not valid_job_id(job_id):
        raise ValueError(f"invalid job id {job_id!r}: expected 32 lowercase hex digits")
    return f"{JOB_PREFIX}{job_id}/"


def job_result_key(job_id: str) -> str:
    """The record of a job created through the API (its invocation's result.json)."""
    return job_prefix(job_id) + RESULT_NAME


def job_spec_key(job_id: str) -> str:
    """What the job was asked to do, written once it is queued."""
    return job_prefix(job_id) + JOB_NAME


def target_id(arn: str) -> str:
    """``arn:minio:sqs:<region>:<ID>:amqp`` → ``ID`` (what :meth:`Deployment.target_arn` makes)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "minio", "sqs"] or parts[5] != "amqp":
        raise ConfigError(f"BUCKETFN_MINIO_TARGET_ARN: not a MinIO AMQP target ARN: {arn!r}")
    return parts[4]
