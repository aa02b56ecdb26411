"""docker-compose.yml and the two images, checked as files (no Docker needed).

The compose stack and the native scripts (infra/local) must configure MinIO's
AMQP target from the same file, build the same MinIO, and agree with the
runtime's defaults; nothing here can be run on a machine without Docker, so
these properties are checked structurally.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from runtime.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NOTIFY_ENV = ROOT / "infra/minio/notify.env"
MINIO_DOCKERFILE = ROOT / "infra/minio/Dockerfile"
RUNTIME_DOCKERFILE = ROOT / "infra/runtime/Dockerfile"
LOCAL_ENV = ROOT / "infra/local/env.sh"
LOCAL_MINIO = ROOT / "infra/local/minio.sh"

SERVICES = ("rabbitmq", "minio", "init", "runtime")
# ${NAME:-default} or ${NAME-default}: the only forms that work without an .env file.
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")
Service = dict[str, Any]


# ── helpers ──────────────────────────────────────────────────────────────────


def _interpolate(value: str) -> str:
    """Compose's variable substitution with nothing set: every default applies."""
    return VARIABLE.sub(lambda m: m["default"] or "", value)


def _environment(service: Service) -> dict[str, str]:
    """A service's environment as a mapping, whichever syntax it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key, sep, value = stripped.partition("=")
            assert sep, f"not KEY=VALUE in {path.name}: {line!r}"
            pairs[key] = value
    return pairs


def _host_ip(port: str | dict[str, Any]) -> str:
    """The host address a published port binds ("" means every interface)."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else ""


def _volumes(service: Service) -> dict[str, str]:
    """Mount target → source of a service's volumes, whichever syntax they use."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, _, rest = str(volume).partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


def _seconds(duration: str) -> float:
    """A compose duration ("45s", "1m30s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _dockerfile(path: Path) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _instructions(path: Path, keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction of a Dockerfile, in order."""
    prefix = keyword.upper() + " "
    return [ln[len(prefix) :].strip() for ln in _dockerfile(path) if ln.startswith(prefix)]


def _final_stage(path: Path) -> list[str]:
    """The instructions of a Dockerfile's last stage (what the image contains)."""
    lines = _dockerfile(path)
    last_from = max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))
    return lines[last_from:]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Docker Compose reads it (anchors resolved)."""
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    """The compose services by name."""
    found: dict[str, Service] = compose["services"]
    return found


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The runtime's defaults, not whatever this shell's BUCKETFN_* variables say."""
    for name in list(os.environ):
        if name.upper().startswith("BUCKETFN_"):
            monkeypatch.delenv(name)
    return Settings()


@pytest.fixture(scope="module")
def notify() -> dict[str, str]:
    """The AMQP target's shared settings."""
    return _env_file(NOTIFY_ENV)


# ── services and their order ─────────────────────────────────────────────────


def test_the_four_services_exist(services: dict[str, Service]) -> None:
    assert set(SERVICES) <= set(services)


def test_rabbitmq_is_an_official_management_image(services: dict[str, Service]) -> None:
    assert re.fullmatch(
        r"rabbitmq:(3\.13|4\.\d+)(\.\d+)?-management", services["rabbitmq"]["image"]
    )


def test_rabbitmq_is_healthy_only_once_it_accepts_connections(
    services: dict[str, Service],
) -> None:
    test = services["rabbitmq"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "rabbitmq-diagnostics"]
    assert "check_port_connectivity" in test


def test_rabbitmq_keeps_its_data_across_recreation(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    rabbitmq = services["rabbitmq"]
    # The node name, and so the data directory, derives from the hostname.
    assert rabbitmq.get("hostname")
    assert _volumes(rabbitmq).get("/var/lib/rabbitmq") in compose["volumes"]


def test_minio_is_healthy_only_with_write_quorum(services: dict[str, Service]) -> None:
    test = services["minio"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "curl"]
    # Without --fail curl exits 0 on a 503 and the check would always pass.
    assert any(a == "--fail" or re.fullmatch(r"-[a-zA-Z]*f[a-zA-Z]*", a) for a in test[2:])
    urls = [urlsplit(a) for a in test if a.startswith("http")]
    assert [(u.hostname, u.port, u.path) for u in urls] == [
        ("127.0.0.1", 9000, "/minio/health/cluster")
    ]


def test_minio_image_has_curl_for_its_healthcheck() -> None:
    installs = [ln for ln in _final_stage(MINIO_DOCKERFILE) if "apt-get install" in ln]
    assert any(re.search(r"\bcurl\b", ln) for ln in installs)


def test_minio_waits_for_a_healthy_rabbitmq(services: dict[str, Service]) -> None:
    assert services["minio"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_init_waits_for_both_servers_healthy(services: dict[str, Service]) -> None:
    depends = services["init"]["depends_on"]
    assert depends["minio"]["condition"] == "service_healthy"
    assert depends["rabbitmq"]["condition"] == "service_healthy"


def test_runtime_starts_only_after_init_succeeded(services: dict[str, Service]) -> None:
    condition = services["runtime"]["depends_on"]["init"]["condition"]
    assert condition == "service_completed_successfully"


def test_init_runs_once_and_the_runtime_restarts(services: dict[str, Service]) -> None:
    init, runtime = services["init"], services["runtime"]
    assert (init["command"], init["restart"]) == (["init", "functions:app"], "no")
    assert (runtime["command"], runtime["restart"]) == (["run", "functions:app"], "unless-stopped")


def test_every_published_port_binds_loopback(services: dict[str, Service]) -> None:
    published = {
        (name, str(port)): _host_ip(port)
        for name, service in services.items()
        for port in service.get("ports", [])
    }
    assert published, "no published ports at all"
    assert {k: ip for k, ip in published.items() if ip != "127.0.0.1"} == {}


def test_every_variable_has_a_default() -> None:
    text = COMPOSE.read_text()
    references = re.findall(r"\$\{[^}]*\}", text)
    assert references, "no variables: credentials would be hard-coded"
    assert [r for r in references if not (m := VARIABLE.fullmatch(r)) or m["default"] is None] == []


# ── MinIO's AMQP target and the runtime agree ────────────────────────────────


def test_minio_reads_the_shared_notify_env(services: dict[str, Service]) -> None:
    env_file = services["minio"]["env_file"]
    paths = [env_file] if isinstance(env_file, str) else env_file
    paths = [p["path"] if isinstance(p, dict) else p for p in paths]
    assert [(COMPOSE.parent / p).resolve() for p in paths] == [NOTIFY_ENV.resolve()]


def test_native_minio_sources_the_same_notify_env() -> None:
    text = LOCAL_MINIO.read_text()
    sourced = re.search(
        r"^[^#\n]*\b(?:source|\.)\s+\"?\$ROOT/infra/minio/notify\.env\"?", text, re.M
    )
    assert sourced, "infra/local/minio.sh does not source infra/minio/notify.env"
    # Sourced variables reach MinIO's environment only when exported (set -a).
    assert "set -a" in text[: sourced.end()]


def test_notify_env_matches_the_runtime_exchange(
    notify: dict[str, str], defaults: Settings
) -> None:
    assert (
        notify["MINIO_NOTIFY_AMQP_EXCHANGE_BUCKETFN"],
        notify["MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_BUCKETFN"],
        notify["MINIO_NOTIFY_AMQP_ROUTING_KEY_BUCKETFN"],
    ) == (defaults.exchange, defaults.exchange_type, defaults.routing_key)


def test_target_id_matches_the_runtime_arn(
    notify: dict[str, str], services: dict[str, Service], defaults: Settings
) -> None:
    # arn:minio:sqs::<ID>:<type> ↔ MINIO_NOTIFY_<TYPE>_<SETTING>_<ID>
    arn = defaults.minio_target_arn.split(":")
    assert arn[:3] == ["arn", "minio", "sqs"]
    target_id, target_type = arn[4], arn[5]
    minio_env = _environment(services["minio"])
    keys = set(notify) | {k for k in minio_env if k.startswith("MINIO_NOTIFY_")}
    prefix, suffix = f"MINIO_NOTIFY_{target_type.upper()}_", f"_{target_id}"
    assert {k for k in keys if not (k.startswith(prefix) and k.endswith(suffix))} == set()
    assert notify[f"{prefix}ENABLE{suffix}"] == "on"


def test_notify_env_flags_have_the_exact_values_minio_accepts(notify: dict[str, str]) -> None:
    flags = ("ENABLE", "DURABLE", "MANDATORY", "PUBLISHING_CONFIRMS")
    assert {f: notify[f"MINIO_NOTIFY_AMQP_{f}_BUCKETFN"] for f in flags} == dict.fromkeys(
        flags, "on"
    )
    # 2 is persistent; 1 would lose queued events when RabbitMQ restarts.
    assert notify["MINIO_NOTIFY_AMQP_DELIVERY_MODE_BUCKETFN"] == "2"


def test_minio_event_queue_is_on_a_volume(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    minio = services["minio"]
    env = _environment(minio)
    queue_dir = env.get("MINIO_NOTIFY_AMQP_QUEUE_DIR_BUCKETFN")
    assert queue_dir, "no queue_dir: events are lost while RabbitMQ is down"
    assert _volumes(minio).get(queue_dir) in compose["volumes"]
    assert int(env["MINIO_NOTIFY_AMQP_QUEUE_LIMIT_BUCKETFN"]) > 0


def test_minio_url_points_at_the_rabbitmq_service(services: dict[str, Service]) -> None:
    url = urlsplit(_interpolate(_environment(services["minio"])["MINIO_NOTIFY_AMQP_URL_BUCKETFN"]))
    assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)


# ── MinIO's drives and image ─────────────────────────────────────────────────


def test_minio_has_four_data_volumes(compose: dict[str, Any], services: dict[str, Service]) -> None:
    mounts = _volumes(services["minio"])
    drives = [mounts.get(f"/data{i}") for i in range(1, 5)]
    assert all(d in compose["volumes"] for d in drives), drives
    assert len(set(drives)) == 4, "drives share a volume"
    # The server serves exactly those four directories.
    assert "/data{1...4}" in json.loads(_instructions(MINIO_DOCKERFILE, "CMD")[-1])


def test_minio_image_builds_the_native_pin() -> None:
    native = re.search(r'^MINIO_VERSION="\$\{MINIO_VERSION:-(\S+)\}"$', LOCAL_ENV.read_text(), re.M)
    args = dict(a.partition("=")[::2] for a in _instructions(MINIO_DOCKERFILE, "ARG"))
    assert native and args.get("MINIO_VERSION") == native[1]
    runs = " ".join(_instructions(MINIO_DOCKERFILE, "RUN"))
    assert re.search(r'go install "?github\.com/minio/minio@\$\{MINIO_VERSION\}"?', runs)
    assert "CGO_ENABLED=0" in " ".join(_instructions(MINIO_DOCKERFILE, "ENV"))


@pytest.mark.parametrize(
    "dockerfile", [MINIO_DOCKERFILE, RUNTIME_DOCKERFILE], ids=lambda p: p.parent.name
)
def test_images_run_as_non_root(dockerfile: Path) -> None:
    users = [ln.split()[1] for ln in _final_stage(dockerfile) if ln.startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


# ── the runtime's image and environment ─────────────────────────────────────


def test_runtime_image_runs_the_bucketfn_command() -> None:
    assert json.loads(_instructions(RUNTIME_DOCKERFILE, "ENTRYPOINT")[-1]) == ["bucketfn"]
    assert json.loads(_instructions(RUNTIME_DOCKERFILE, "CMD")[-1]) == ["run", "functions:app"]


def test_init_and_runtime_use_the_project_image(services: dict[str, Service]) -> None:
    builds = [services[s]["build"] for s in ("init", "runtime")]
    for build in builds:
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            RUNTIME_DOCKERFILE.resolve()
        )
    assert services["init"]["image"] == services["runtime"]["image"]


def test_init_and_runtime_share_one_environment(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    shared = compose["x-bucketfn-env"]
    runtime = _environment(services["runtime"])
    assert _environment(services["init"]) == shared
    # The runtime adds only where it serves /metrics (inside its container).
    assert {k: v for k, v in runtime.items() if k not in shared} == {
        "BUCKETFN_METRICS_ADDRESS": "0.0.0.0:9464"
    }
    assert {k: runtime[k] for k in shared} == shared
    assert [k for k in shared if not k.startswith("BUCKETFN_")] == []


def test_runtime_environment_points_at_the_compose_services(
    services: dict[str, Service],
) -> None:
    env = {k: _interpolate(v) for k, v in _environment(services["runtime"]).items()}
    s3, amqp = urlsplit(env["BUCKETFN_S3_ENDPOINT"]), urlsplit(env["BUCKETFN_AMQP_URL"])
    assert (s3.hostname, s3.port) == ("minio", 9000)
    assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", "rabbitmq", 5672)


def test_runtime_credentials_are_the_servers(services: dict[str, Service]) -> None:
    # Compared before substitution, so they follow the same variables too.
    runtime = _environment(services["runtime"])
    minio, rabbitmq = _environment(services["minio"]), _environment(services["rabbitmq"])
    assert (runtime["BUCKETFN_S3_ACCESS_KEY"], runtime["BUCKETFN_S3_SECRET_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    userinfo = f"amqp://{rabbitmq['RABBITMQ_DEFAULT_USER']}:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@"
    assert runtime["BUCKETFN_AMQP_URL"].startswith(userinfo)
    assert minio["MINIO_NOTIFY_AMQP_URL_BUCKETFN"].startswith(userinfo)


def test_runtime_can_scale_horizontally(services: dict[str, Service]) -> None:
    runtime = services["runtime"]
    # A fixed container name or a single published port allows only one replica:
    # the metrics port is published from a range, a port for each replica.
    assert "container_name" not in runtime
    published = [str(p).split(":") for p in runtime["ports"]]
    assert published == [["127.0.0.1", "9464-9473", "9464"]]


def test_runtime_gets_its_full_shutdown_grace(
    services: dict[str, Service], defaults: Settings
) -> None:
    assert _seconds(services["runtime"]["stop_grace_period"]) > defaults.shutdown_grace


def test_build_context_leaves_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".state"} <= ignored
