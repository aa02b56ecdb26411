"""The clustered stack on loopback: three RabbitMQ nodes, four MinIO servers, three runtimes.

The clusters are infra/local's scripts (cluster-rabbitmq.sh, cluster-minio.sh);
this module mirrors their port layout (cluster-env.sh), runs ``bucketfn init``
against them and starts the runtimes as child processes. Runtime N connects to
RabbitMQ node N and MinIO server N: one URL each plus the runtime's own
reconnect, so the processes are spread over the nodes and a killed node costs
only its own runtime a reconnect. MinIO server 4 serves the load generator only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "infra/local"
APP = "tests.cluster.app:app"
PREFETCH = 6  # BUCKETFN_PREFETCH of every runtime: its per-function concurrency
SWEEP_INTERVAL = 10.0  # seconds; the default grace (30 s) is kept


def base() -> int:
    return int(os.environ.get("BUCKETFN_CLUSTER_PORT_BASE", "30000"))


def amqp_url(node: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{base() + 10 + node}/"


def s3_endpoint(server: int) -> str:
    return f"http://127.0.0.1:{base() + 100 + server}"


def metrics_address(runtime: int) -> str:
    return f"127.0.0.1:{base() + 200 + runtime}"


def script(name: str, *args: str, timeout: float = 300.0) -> None:
    """Run ``infra/local/<name>.sh ARGS``; its output goes to ours (it is the log)."""
    subprocess.run([str(LOCAL / f"{name}.sh"), *args], check=True, timeout=timeout)


def ctl(node: int, *args: str) -> str:
    """rabbitmqctl against cluster node ``node``; its standard output."""
    done = subprocess.run(
        [str(LOCAL / "cluster-rabbitmq.sh"), "ctl", str(node), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


def env(runtime: int) -> dict[str, str]:
    """The environment of runtime ``runtime`` (and of init, as runtime 1)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("BUCKETFN_")}
    return {
        **keep,
        "BUCKETFN_STATE": os.environ.get("BUCKETFN_STATE", str(ROOT / ".state")),
        "BUCKETFN_AMQP_URL": amqp_url(runtime),
        "BUCKETFN_AMQP_MANAGEMENT_URL": f"http://127.0.0.1:{base() + 20 + runtime}",
        "BUCKETFN_S3_ENDPOINT": s3_endpoint(runtime),
        "BUCKETFN_OUTPUT_BUCKET": "cluster-out",
        "BUCKETFN_METRICS_ADDRESS": metrics_address(runtime),
        "BUCKETFN_PREFETCH": str(PREFETCH),
        "BUCKETFN_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
        "BUCKETFN_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def _ready(runtime: int) -> bool:
    try:
        url = f"http://{metrics_address(runtime)}/readyz"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


@dataclass
class Runtimes:
    """``count`` runtime processes, competing consumers of the same queues."""

    logs: Path
    count: int = 3
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, n: int) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"runtime{n}.log").open("ab") as log:
            self.procs[n] = subprocess.Popen(
                [str(ROOT / ".venv/bin/bucketfn"), "run", APP],
                env=env(n),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(n)

    def wait_ready(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not _ready(n):
            if self.procs[n].poll() is not None:
                raise RuntimeError(f"runtime {n} exited; see {self.logs}/runtime{n}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"runtime {n} not ready in {timeout:g} s")
            time.sleep(0.5)

    def start_all(self) -> None:
        for n in range(1, self.count + 1):
            self.start(n)

    def kill(self, n: int) -> None:
        """SIGKILL runtime ``n``: no drain, its unacked deliveries go back to the queue."""
        self.procs[n].send_signal(signal.SIGKILL)
        self.procs[n].wait(timeout=30)

    def stop_all(self) -> None:
        """SIGTERM (a graceful drain) every live runtime; SIGKILL what outlives 45 s."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for p in live:
            p.terminate()
        for p in live:
            try:
                p.wait(timeout=45)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def init() -> None:
    """``bucketfn init`` of the cluster app, as MinIO's admin, through node 1 and server 1."""
    subprocess.run(
        [str(ROOT / ".venv/bin/bucketfn"), "init", APP],
        env=env(1),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )


def replicas(queue: str) -> int:
    """How many cluster nodes hold a member of quorum queue ``queue``."""
    for line in ctl(1, "-q", "list_queues", "name", "members", "--no-table-headers").splitlines():
        name, _, members = line.partition("\t")
        if name == queue:
            return members.count("@")
    raise RuntimeError(f"queue {queue!r} not found on the cluster")
