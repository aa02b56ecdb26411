"""The Helm chart (infra/helm/bucketfn): lint, render, validate against real schemas.

``make test`` installs Helm (built from its Go module) and the CRDs before pytest
(infra/local/helm.sh); a missing one fails here, it is never skipped. Every
rendered object is validated strictly: the built-in kinds against the
Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships, KEDA's and the
prometheus-operator's kinds against their CRDs' ``openAPIV3Schema``. Then the
properties that tie the chart to the app: its functions are the app's routes,
its queue names are the runtime's, its flags are the CLI's.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from functions import app
from runtime.core.names import valid_function_name
from runtime.core.settings import Settings, split_address

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra/helm/bucketfn"
SCRIPT = ROOT / "infra/local/helm.sh"
KUBERNETES = "1.37.0"  # the newest schemas kubernetes-validate ships
# The variants `make test` renders: the defaults, and without KEDA (HPAs instead).
VARIANTS = {"default": [], "keda-off": ["--set", "keda.enabled=false"]}
CRD_FILES = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
}
Object = dict[str, Any]


def _script(command: str) -> Path:
    out = subprocess.run([SCRIPT, command], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def helm() -> Path:
    """The cached Helm binary; missing is a failure (`infra/local/helm.sh install`)."""
    path = _script("path")
    assert path.is_file(), f"{path} is missing: run `infra/local/helm.sh install`"
    return path


@pytest.fixture(scope="module")
def crds() -> Path:
    """The directory of KEDA's and the prometheus-operator's CRD files."""
    path = _script("crds")
    missing = [f for f in CRD_FILES.values() if not (path / f).is_file()]
    assert not missing, f"{missing} not in {path}: run `infra/local/helm.sh install`"
    return path


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Helm's own state (repositories, plugins) away from the user's.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@cache
def _rendered(helm: Path, variant: str) -> tuple[Object, ...]:
    done = _helm(helm, "template", "bucketfn", str(CHART), "--namespace", "bucketfn",
                 *VARIANTS[variant])  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(o for o in yaml.safe_load_all(done.stdout) if o)


@pytest.fixture(scope="module", params=list(VARIANTS))
def objects(request: pytest.FixtureRequest, helm: Path) -> tuple[Object, ...]:
    """Every object the chart renders, for each variant."""
    return _rendered(helm, request.param)


@pytest.fixture(scope="module")
def default(helm: Path) -> tuple[Object, ...]:
    return _rendered(helm, "default")


@pytest.fixture(scope="module")
def keda_off(helm: Path) -> tuple[Object, ...]:
    return _rendered(helm, "keda-off")


def of_kind(objects: tuple[Object, ...], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def container(deployment: Object) -> Object:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    found: Object = only
    return found


def config(objects: tuple[Object, ...]) -> dict[str, str]:
    (configmap,) = of_kind(objects, "ConfigMap")
    data: dict[str, str] = configmap["data"]
    return data


def secret(objects: tuple[Object, ...]) -> dict[str, str]:
    (found,) = of_kind(objects, "Secret")
    data: dict[str, str] = found["stringData"]
    return data


def settings_of(objects: tuple[Object, ...]) -> Settings:
    """The settings a pod of the chart reads (ConfigMap and Secret as its environment)."""
    env = {**config(objects), **secret(objects)}
    fields = {k.removeprefix("BUCKETFN_").lower(): v for k, v in env.items()}
    return Settings.model_validate({k: v for k, v in fields.items() if k in Settings.model_fields})


def runtimes(objects: tuple[Object, ...]) -> list[Object]:
    """The Deployments running `bucketfn run` (dispatcher and workers)."""
    return [d for d in of_kind(objects, "Deployment") if container(d)["args"][0] == "run"]


ACCEPTED = """
import json, sys
from runtime.cli.main import main
print(json.dumps([main([*args, "--help"]) == 0 for args in json.loads(sys.argv[1])]))
"""


def accepted(*commands: list[str]) -> list[bool]:
    """Whether the CLI parses each command line (`--help` after one parses all its options).

    In a process of its own (one for all): the CLI's root command configures logging.
    """
    done = subprocess.run(
        [sys.executable, "-c", ACCEPTED, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers: list[bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


# ── helm lint and the schemas ────────────────────────────────────────────────


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_helm_lint_passes_strictly(helm: Path, variant: str) -> None:
    done = _helm(helm, "lint", "--strict", str(CHART), *VARIANTS[variant])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_helm_lint_fails_a_broken_chart(helm: Path, tmp_path: Path) -> None:
    # The control: the same chart with a template that does not parse.
    broken = tmp_path / "bucketfn"
    subprocess.run(["cp", "-r", str(CHART), str(broken)], check=True)
    (broken / "templates/broken.yaml").write_text("{{ if }}\n")
    assert _helm(helm, "lint", str(broken)).returncode != 0


def test_every_builtin_object_is_valid_for_kubernetes(objects: tuple[Object, ...]) -> None:
    builtin = [o for o in objects if (_group(o), o["kind"]) not in CRD_FILES]
    assert {o["kind"] for o in builtin} >= {"Deployment", "Service", "ConfigMap", "Secret", "Job"}
    for obj in builtin:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_kubernetes_validation_catches_a_typo(default: tuple[Object, ...]) -> None:
    deployment = copy.deepcopy(runtimes(default)[0])
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def _group(obj: Object) -> str:
    return str(obj["apiVersion"]).rpartition("/")[0]


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema as JSON Schema that, like the API server's strict field
    validation, rejects fields it does not declare (a structural schema prunes them)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable"):
        out.pop("nullable")
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _crd_schema(path: Path, api_version: str) -> Any:
    crd = yaml.safe_load(path.read_text())
    version = api_version.rpartition("/")[2]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert entry["served"], f"{api_version} {crd['spec']['names']['kind']} is not served"
    return _strict(entry["schema"]["openAPIV3Schema"])


def _validate_custom(obj: Object, crds: Path) -> None:
    schema = _crd_schema(crds / CRD_FILES[(_group(obj), obj["kind"])], obj["apiVersion"])
    jsonschema.validate(obj, schema, cls=jsonschema.Draft7Validator)


def test_every_custom_object_is_valid_for_its_crd(objects: tuple[Object, ...], crds: Path) -> None:
    custom = [o for o in objects if (_group(o), o["kind"]) in CRD_FILES]
    assert {o["kind"] for o in custom} >= {"ServiceMonitor"}
    for obj in custom:
        _validate_custom(obj, crds)


def test_crd_validation_catches_a_typo(default: tuple[Object, ...], crds: Path) -> None:
    scaled = copy.deepcopy(of_kind(default, "ScaledObject")[0])
    scaled["spec"]["minReplicas"] = 0  # KEDA's field is minReplicaCount
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        _validate_custom(scaled, crds)
    monitor = copy.deepcopy(of_kind(default, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"
    with pytest.raises(jsonschema.ValidationError):
        _validate_custom(monitor, crds)


# ── the chart and the app agree ──────────────────────────────────────────────


def test_the_functions_are_the_apps_routes() -> None:
    listed = [f["name"] for f in values()["functions"]]
    assert sorted(listed) == sorted(r.name for r in app.routes)
    assert len(set(listed)) == len(listed)


def test_every_config_key_is_a_setting(default: tuple[Object, ...]) -> None:
    keys = {k.removeprefix("BUCKETFN_").lower() for k in {**config(default), **secret(default)}}
    unknown = {k for k in keys if k not in Settings.model_fields and not k.startswith("keda-")}
    assert unknown == set()
    # And the values parse: what a pod would read is a valid configuration.
    assert settings_of(default).queue_prefix == values()["config"]["queue_prefix"]


def _workers(objects: tuple[Object, ...]) -> dict[str, list[str]]:
    """Function → its worker's command line."""
    workers = {}
    for deployment in runtimes(objects):
        args = container(deployment)["args"]
        if "--function" in args:
            workers[args[args.index("--function") + 1]] = args
    return workers


def test_one_worker_per_function(objects: tuple[Object, ...]) -> None:
    assert set(_workers(objects)) == {r.name for r in app.routes}
    dispatchers = [d for d in runtimes(objects) if "--dispatcher-only" in container(d)["args"]]
    assert len(dispatchers) == 1
    assert all("--no-dispatcher" in args for args in _workers(objects).values())


def test_every_command_line_is_one_the_cli_accepts(default: tuple[Object, ...]) -> None:
    commands = [
        container(o)["args"] if o["kind"] == "Deployment" else
        o["spec"]["template"]["spec"]["containers"][0]["args"]
        for o in default if o["kind"] in ("Deployment", "Job")
    ]  # fmt: skip
    assert {c[0] for c in commands} == {"run", "init", "api"}
    # The control: a flag the CLI lacks is refused.
    assert accepted(*commands, [*commands[0], "--router-only"]) == [True] * len(commands) + [False]


def test_the_init_job_is_a_hook_running_init(default: tuple[Object, ...]) -> None:
    (job,) = of_kind(default, "Job")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"post-install", "post-upgrade"}
    (init,) = job["spec"]["template"]["spec"]["containers"]
    assert init["args"] == ["init", values()["app"]]


def test_probes_and_grace_follow_the_settings(objects: tuple[Object, ...]) -> None:
    settings = settings_of(objects)
    _, port = split_address(settings.metrics_address)
    assert len(runtimes(objects)) == 1 + len(app.routes)
    for deployment in runtimes(objects):
        pod, main = deployment["spec"]["template"]["spec"], container(deployment)
        (declared,) = main["ports"]
        assert (declared["name"], declared["containerPort"]) == ("metrics", port)
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        # SIGTERM drains for shutdown_grace; SIGKILL must come later.
        assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace
        assert pod["terminationGracePeriodSeconds"] > Settings().shutdown_grace


def test_every_container_requests_cpu_and_memory(objects: tuple[Object, ...]) -> None:
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]
    for pod in pods:
        for c in pod["containers"]:
            assert set(c["resources"]["requests"]) >= {"cpu", "memory"}, c["name"]


def test_every_deployment_has_its_own_disruption_budget(objects: tuple[Object, ...]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["maxUnavailable"] == 1


def _selects(selector: Object, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_keda_scales_each_function_on_its_own_queue(default: tuple[Object, ...]) -> None:
    settings = settings_of(default)
    scaled = {o["metadata"]["name"]: o for o in of_kind(default, "ScaledObject")}
    assert of_kind(default, "HorizontalPodAutoscaler") == []
    (auth,) = of_kind(default, "TriggerAuthentication")
    keys = {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert keys <= set(secret(default))
    queues = {}
    for deployment in runtimes(default):
        args = container(deployment)["args"]
        if "--function" not in args:
            continue
        function = args[args.index("--function") + 1]
        spec = scaled[deployment["metadata"]["name"]]["spec"]
        assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert spec["minReplicaCount"] == 0  # from zero
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert (trigger["type"], meta["mode"]) == ("rabbitmq", "QueueLength")
        assert int(meta["value"]) >= 1
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        # hostFromEnv names a variable the scaled container has (from the Secret).
        assert meta["hostFromEnv"] in secret(default)
        (secret_object,) = of_kind(default, "Secret")
        refs = [e.get("secretRef", {}).get("name") for e in container(deployment)["envFrom"]]
        assert secret_object["metadata"]["name"] in refs
        # The count is KEDA's: a replicas field would reset it on every upgrade.
        assert "replicas" not in deployment["spec"]
        assert meta["vhostName"] == values()["rabbitmq"]["vhost"]
        queues[function] = meta["queueName"]
    assert queues == {r.name: settings.queues.function(r.name) for r in app.routes}


def test_without_keda_an_hpa_scales_each_function(keda_off: tuple[Object, ...]) -> None:
    assert of_kind(keda_off, "ScaledObject") == of_kind(keda_off, "TriggerAuthentication") == []
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o["spec"] for o in
            of_kind(keda_off, "HorizontalPodAutoscaler")}  # fmt: skip
    workers = [d for d in runtimes(keda_off) if "--function" in container(d)["args"]]
    assert set(hpas) == {d["metadata"]["name"] for d in workers}
    for spec in hpas.values():
        assert spec["minReplicas"] >= 1  # an HPA cannot wake a function scaled to zero
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
    assert [d for d in workers if "replicas" in d["spec"]] == []


def test_a_function_overrides_the_worker_defaults(helm: Path, tmp_path: Path) -> None:
    functions = [
        {"name": r.name, **({"maxReplicas": 3} if r.name == "json_canonicalize" else {})}
        for r in app.routes
    ]
    overrides = tmp_path / "values.yaml"
    overrides.write_text(yaml.safe_dump({"functions": functions}))
    done = _helm(helm, "template", "bucketfn", str(CHART), "--values", str(overrides))
    assert done.returncode == 0, done.stderr
    scaled = [o for o in yaml.safe_load_all(done.stdout) if o and o["kind"] == "ScaledObject"]
    limits = {o["spec"]["triggers"][0]["metadata"]["queueName"]: o["spec"]["maxReplicaCount"]
              for o in scaled}  # fmt: skip
    default = values()["worker"]["maxReplicas"]
    assert limits == {
        f"bucketfn.fn.{r.name}": 3 if r.name == "json_canonicalize" else default for r in app.routes
    }


def test_the_service_monitor_scrapes_every_runtime(default: tuple[Object, ...]) -> None:
    (monitor,) = of_kind(default, "ServiceMonitor")
    services = [
        s for s in of_kind(default, "Service")
        if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    ]  # fmt: skip
    (service,) = services
    assert service["spec"]["clusterIP"] == "None"  # each pod scraped, not a balanced one
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    selected = [
        d["metadata"]["name"] for d in of_kind(default, "Deployment")
        if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
               for k, v in service["spec"]["selector"].items())
    ]  # fmt: skip
    assert sorted(selected) == sorted(d["metadata"]["name"] for d in runtimes(default))


def test_the_api_is_served_with_probes(default: tuple[Object, ...]) -> None:
    (api,) = [d for d in of_kind(default, "Deployment") if container(d)["args"][0] == "api"]
    main = container(api)
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Off loopback the API needs a token: the chart's Secret always carries one.
    assert len(secret(default)["BUCKETFN_API_TOKEN"]) >= 32


def test_images_are_the_runtime_dockerfiles(objects: tuple[Object, ...]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    images = {
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{values()['image']['repository']}:{chart['appVersion']}"}
    project = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert project and chart["appVersion"] == project[1]
    assert "infra/runtime/Dockerfile" in (CHART / "values.yaml").read_text()


def _walk(objects: tuple[Object, ...]) -> Iterator[str]:
    for o in objects:
        yield f"{o['kind']}/{o['metadata']['name']}"


def test_names_are_unique_per_kind(objects: tuple[Object, ...]) -> None:
    names = list(_walk(objects))
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("functions[0].name=Bad-Name", "/functions/0/name"),
        ("functions[0].name=jobs", "/functions/0/name"),  # a name bucketfn keeps for itself
        ("config.queue_prefix=Upper", "/config/queue_prefix"),
        ("worker.minReplicas=-1", "/worker/minReplicas"),
    ],
)
def test_values_the_runtime_would_refuse_fail_at_render(
    helm: Path, setting: str, says: str
) -> None:
    done = _helm(helm, "template", "bucketfn", str(CHART), "--set", setting)
    assert done.returncode != 0
    assert says in done.stderr


def test_the_schemas_function_names_are_the_runtimes() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    name = schema["properties"]["functions"]["items"]["properties"]["name"]
    pattern = re.compile(name["pattern"])
    for candidate in ("csv_row_count", "a", "x" * 63, "x" * 64, "9lives", "has-dash", "jobs"):
        allowed = bool(pattern.search(candidate)) and candidate != name["not"]["const"]
        assert allowed == valid_function_name(candidate), candidate
