"""Settings: the only place bucketfn reads the environment.

Every option is ``BUCKETFN_<NAME>`` in the environment. Defaults are the local,
loopback-only servers that ``make up`` starts (MinIO's and RabbitMQ's own
default credentials); production overrides them all.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.core.errors import ConfigError
from runtime.core.names import DEPLOYMENT_PATTERN, Deployment, Queues
from runtime.core.streams import MIB


class Settings(BaseSettings):
    """Runtime configuration, read from ``BUCKETFN_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="BUCKETFN_", frozen=True, extra="ignore")

    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_region: str = "us-east-1"
    s3_max_connections: int = Field(default=64, ge=1)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # The deployment's name: its MinIO target, routing key and (by default) queue
    # prefix derive from it (runtime.core.names.Deployment), so deployments that
    # share one MinIO and RabbitMQ never see each other's events.
    deployment: str = Field(default="bucketfn", pattern=DEPLOYMENT_PATTERN)
    # MinIO re-declares this exchange before every publish with exactly these
    # properties; the runtime must declare it identically or one side fails.
    exchange: str = "bucketfn.events"
    exchange_type: str = "direct"
    routing_key: str = "bucketfn.ingress"  # unless set: `<deployment>.ingress`
    # RabbitMQ's management HTTP API, with amqp_url's credentials: what `init` sets
    # that AMQP cannot (the alternate-exchange policy, users, permissions). Unset:
    # amqp_url's host on RabbitMQ's own port pairing (AMQP port + 10000: 15672).
    amqp_management_url: str | None = None
    # The broker identities `init` keeps (users `<queue prefix>-runtime` / `-publisher`,
    # runtime.core.names): the runtime's, limited to this deployment's queues, and
    # MinIO's, which may only publish to the events exchange. Unset: `init` leaves
    # that one alone (`make up` sets both, infra/local/init.sh).
    amqp_runtime_password: SecretStr | None = None
    amqp_publisher_password: SecretStr | None = None
    # The MinIO notification target id: MINIO_NOTIFY_AMQP_ENABLE_<ID>=on; unless
    # set, the deployment's own (its name upper-cased).
    minio_target_arn: str = "arn:minio:sqs::BUCKETFN:amqp"
    # How MinIO reaches RabbitMQ (as its publisher user): what `init` configures a
    # deployment's target with when MinIO has none for it yet (then restarts MinIO).
    minio_amqp_url: SecretStr | None = None
    # The MinIO identities `init` keeps for the runtime and the jobs API (users
    # `<deployment>-runtime` / `-api`, each with a policy derived from the routes);
    # unset: `init` leaves that one alone. `s3_access_key` is who this process is.
    runtime_s3_secret_key: SecretStr | None = None
    api_s3_secret_key: SecretStr | None = None

    # Names every queue of this deployment (`deployment` unless set); a unique one
    # isolates a test run's queues.
    queue_prefix: str = Field(default="bucketfn", pattern=r"^[a-z][a-z0-9_.-]{0,40}$")
    output_bucket: str = "job-outputs"
    # Buckets come from the app's routes (what they trigger on and write to);
    # these are any others ``init`` should create as well.
    extra_buckets: tuple[str, ...] = ()

    # Deliveries of one message (its consumer crashed or was killed each time)
    # before the broker dead-letters it. Fixed when a queue is first declared.
    delivery_limit: int = Field(default=10, ge=1)
    # The broker's consumer timeout (RabbitMQ's `consumer_timeout`, 30 min by
    # default): a delivery unacked for longer closes the channel and is redelivered,
    # so no function's timeout may reach it. Set it to what the broker uses.
    consumer_timeout: float = Field(default=1800.0, gt=0)
    prefetch: int = Field(default=16, ge=1, description="in-flight invocations per function")
    router_prefetch: int = Field(default=256, ge=1)
    read_chunk_size: int = Field(default=MIB, ge=64 * 1024)
    connect_timeout: float = Field(default=60.0, ge=0, description="wait for RabbitMQ at start")
    # How long a publish may wait for the broker's confirm (an alarm blocks publishers).
    publish_timeout: float = Field(default=30.0, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    event_loop: str = Field(default="uvloop", pattern="^(uvloop|asyncio)$")
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    # Where `bucketfn run` serves /metrics, /healthz and /readyz. Loopback by
    # default: metrics say what runs where; expose them on purpose. Port 0: any.
    metrics_address: str = "127.0.0.1:9464"
    # The jobs API and console (`bucketfn api`). Without a token it serves
    # loopback only; `make up` writes one to .state/api/token.
    api_address: str = "127.0.0.1:8080"
    api_token: SecretStr | None = None
    # Uploads through the API land here, and only here.
    upload_bucket: str = "job-inputs"
    upload_prefix: str = "uploads/"

    # The reconciliation sweep: every `sweep_interval` seconds one runtime lists
    # what the routes cover and enqueues objects that have no result for their
    # current content; objects younger than `sweep_grace` are left to their own
    # events. 0 turns the sweep off. `sweep_batch` bounds one pass per route.
    sweep_interval: float = Field(default=60.0, ge=0)
    sweep_grace: float = Field(default=30.0, ge=0)
    sweep_batch: int = Field(default=10_000, ge=1)

    # Data lifecycle: S3 lifecycle rules `bucketfn init` keeps on the buckets it
    # manages, merged with rules it does not own (by rule id). 0 turns one off.
    # Result records and the files written beside them (the output bucket's
    # `<function>/` and `jobs/` prefixes) expire this many days after they were
    # written. Off by default: a record is how the sweep knows an object is done,
    # so a source that outlives its record is run again.
    lifecycle_results_days: int = Field(default=0, ge=0)
    # Quarantined data expires this many days after it was written: rejected rows
    # can be regenerated from the raw layer, which keeps its versions.
    lifecycle_quarantine_days: int = Field(default=30, ge=0)
    # Where quarantined data lives, as `bucket/prefix` (the lake's rejected rows).
    lifecycle_quarantine: tuple[str, ...] = ("staging/_rejected/",)
    # Versions that stopped being current, in the app's versioned buckets (raw),
    # expire this many days later (a current version never does); it must stay
    # above every function's max_age, so a late event still reads its version.
    lifecycle_noncurrent_days: int = Field(default=30, ge=0)
    # Multipart uploads a dead writer left incomplete are aborted this many days
    # after they started. MinIO refuses the rule and does it itself, after
    # MINIO_API_STALE_UPLOADS_EXPIRY (24 h by default); other stores get the rule.
    lifecycle_abort_multipart_days: int = Field(default=1, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        # What is not set explicitly follows the deployment's name. Validators do not
        # run on model_copy: a copy with another deployment must set these itself.
        if not isinstance(data, dict) or "deployment" not in data:
            return data
        return {**Deployment(str(data["deployment"])).settings(), **data}

    @field_validator("lifecycle_quarantine")
    @classmethod
    def _quarantine(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            bucket, sep, prefix = entry.partition("/")
            if not bucket or not sep or len(prefix) > 200:
                raise ValueError(f"expected bucket/prefix (prefix up to 200 chars), got {entry!r}")
        return value

    @field_validator("metrics_address", "api_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @property
    def metrics_bind(self) -> tuple[str, int]:
        """``metrics_address`` as (host, port)."""
        return split_address(self.metrics_address)

    @property
    def api_bind(self) -> tuple[str, int]:
        """``api_address`` as (host, port)."""
        return split_address(self.api_address)

    @property
    def names(self) -> Deployment:
        """The names this deployment owns on the shared servers."""
        return Deployment(self.deployment)

    @property
    def queues(self) -> Queues:
        """The queue names of this deployment."""
        return Queues(self.queue_prefix)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port); brackets around an IPv6 host are removed."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def load() -> Settings:
    """Read settings from the environment now (never at import time).

    A bad value is a :class:`ConfigError` naming the variable, not a traceback.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "BUCKETFN_" + "_".join(map(str, first["loc"])).upper()
        raise ConfigError(f"{name}: {first['msg']}") from exc
