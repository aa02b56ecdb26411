"""docker-compose.yml as the Compose specification's own loader reads it.

compose-go (what ``docker compose config`` runs) validates the file against
the specification's schema, interpolates variables and expands every short
syntax; ``infra/local/compose.sh`` builds it once and ``make test`` installs it
before pytest. The properties below are read from its normalised model, not
from our own parse of the YAML.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runtime.core.settings import split_address

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCRIPT = ROOT / "infra/local/compose.sh"


@pytest.fixture(scope="module")
def checker() -> Path:
    """The cached compose-check binary; missing is a failure (test.sh installs it)."""
    path = Path(
        subprocess.run([SCRIPT, "path"], capture_output=True, text=True, check=True).stdout.strip()
    )
    assert path.is_file(), f"{path} is missing: run `infra/local/compose.sh install`"
    return path


def _load(checker: Path, file: Path) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME: no variable of this shell may change what the file says.
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        [checker, file], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def project(checker: Path) -> dict[str, Any]:
    """The normalised project (`docker compose config --format json`)."""
    done = _load(checker, COMPOSE)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def test_the_loader_rejects_what_the_specification_does(checker: Path, tmp_path: Path) -> None:
    # The control: a key the schema does not know, and a dependency on no service.
    text = COMPOSE.read_text()
    unknown = tmp_path / "unknown.yml"
    unknown.write_text(text.replace("    restart: unless-stopped\n", "    restarts: always\n", 1))
    missing = tmp_path / "missing.yml"
    missing.write_text(
        text.replace("      init:\n        condition", "      nothing:\n        condition")
    )
    assert missing.read_text() != text
    for broken, says in ((unknown, "restarts"), (missing, "nothing")):
        done = _load(checker, broken)
        assert done.returncode == 1
        assert says in done.stderr


def test_the_file_loads_under_the_specification(project: dict[str, Any]) -> None:
    assert project["name"] == "bucketfn"
    assert set(project["services"]) == {"rabbitmq", "minio", "init", "runtime"}


def test_every_published_port_binds_loopback(project: dict[str, Any]) -> None:
    ports = [(n, p) for n, s in project["services"].items() for p in s.get("ports", [])]
    assert ports
    assert [(n, p) for n, p in ports if p.get("host_ip") != "127.0.0.1"] == []


def test_runtime_metrics_port_is_published_on_loopback(project: dict[str, Any]) -> None:
    runtime = project["services"]["runtime"]
    host, port = split_address(runtime["environment"]["BUCKETFN_METRICS_ADDRESS"])
    assert host == "0.0.0.0"  # inside the container; the host side is loopback only
    (published,) = runtime["ports"]
    first, _, last = published["published"].partition("-")
    assert (published["target"], published["host_ip"]) == (port, "127.0.0.1")
    assert int(first) == port and int(last) > port  # one port for each replica


def test_runtime_is_healthy_only_when_ready(project: dict[str, Any]) -> None:
    runtime = project["services"]["runtime"]
    _, port = split_address(runtime["environment"]["BUCKETFN_METRICS_ADDRESS"])
    test = runtime["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    urls = [urlsplit(u) for a in test for u in a.split("'") if u.startswith("http://")]
    assert [(u.hostname, u.port, u.path) for u in urls] == [("127.0.0.1", port, "/readyz")]


class _Probe(http.server.BaseHTTPRequestHandler):
    """Answers ``status`` to every request (what /readyz says, here chosen by the test)."""

    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1), (None, 1)])
def test_the_runtime_healthcheck_passes_only_on_a_2xx(
    project: dict[str, Any], status: int | None, code: int
) -> None:
    # The command itself, run against a stand-in /readyz (None: nothing listens).
    script = project["services"]["runtime"]["healthcheck"]["test"][-1]

    class Probe(_Probe):
        pass

    Probe.status = status or 200
    with http.server.HTTPServer(("127.0.0.1", 0), Probe) as server:
        port = server.server_address[1]
        if status is not None:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        else:
            server.server_close()  # bound, then closed: the port refuses
        done = subprocess.run(
            [sys.executable, "-c", script.replace(":9464/", f":{port}/")],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if status is not None:
            server.shutdown()
    assert done.returncode == code, done.stderr
