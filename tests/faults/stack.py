"""The local stack the faults act on: its S3 client, its scripts, the runtime's process.

Everything is found the way ``infra/local/*.sh`` find it — ``BUCKETFN_STATE``
and the ``BUCKETFN_*``/``RABBITMQ_*`` environment — so a suite run against a
private stack (other ports, another state directory) acts on that stack alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.core.settings import Settings, load
from tests.servers import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "infra/local"


@dataclass(slots=True)
class Stack:
    """Handles on the running stack; ``state`` is the directory ``make up`` used."""

    settings: Settings = field(default_factory=load)
    state: Path = field(
        default_factory=lambda: Path(os.environ.get("BUCKETFN_STATE", ROOT / ".state"))
    )
    s3: S3Client = field(init=False)

    def __post_init__(self) -> None:
        self.s3 = s3_client(self.settings, pool=32)

    def script(self, name: str, *args: str) -> str:
        """Run ``infra/local/<name>.sh ARGS`` (it reads the same environment); its stdout."""
        done = subprocess.run(
            [str(LOCAL / f"{name}.sh"), *args], check=True, capture_output=True, text=True
        )
        return done.stdout

    # The runtime `make up` started: runtime.sh records its pid in a file.
    @property
    def runtime_log(self) -> Path:
        """The log every runtime started by ``runtime.sh`` appends to."""
        return self.state / "runtime/runtime.log"

    def runtime_pid(self) -> int | None:
        """The pid in ``runtime.sh``'s pid file, if that process is alive."""
        try:
            pid = int((self.state / "runtime/runtime.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill_runtime(self) -> int:
        """SIGKILL the runtime (no drain, no goodbye) and wait until it is gone."""
        pid = self.runtime_pid()
        if pid is None:
            raise RuntimeError("no runtime is running: run `make up` first")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return pid
            time.sleep(0.02)
        raise RuntimeError(f"runtime {pid} survived SIGKILL for 10 s")

    def start_runtime(self, timeout: float = 60) -> float:
        """Start the runtime again and wait until it is ready; seconds that took."""
        t0 = time.monotonic()
        self.script("runtime", "start")
        self.wait_ready(timeout)
        return time.monotonic() - t0

    def _probe(self, path: str) -> bool:
        url = f"http://{self.settings.metrics_address}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # loopback only
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def ready(self) -> bool:
        """``/readyz`` answers 200: connected, every consumer started, S3 answering."""
        return self._probe("/readyz")

    def alive(self) -> bool:
        """``/healthz`` answers 200: the runtime's event loop is not stuck."""
        return self._probe("/healthz")

    def wait_ready(self, timeout: float) -> None:
        """Wait for ``/readyz``; RuntimeError if it does not come within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runtime was not ready within {timeout:.0f} s")
            time.sleep(0.1)

    def queue_depths(self) -> dict[str, int]:
        """Messages (ready + unacked) per queue of the deployment, from ``rabbitmqctl``."""
        out = self.script(
            "rabbitmq", "ctl", "-q", "list_queues", "name", "messages", "--no-table-headers"
        )
        prefix = self.settings.queue_prefix + "."
        depths: dict[str, int] = {}
        for line in out.splitlines():
            name, _, count = line.rpartition("\t")
            if name.startswith(prefix) and count.strip().isdigit():
                depths[name] = int(count)
        return depths

    def drained(self, timeout: float) -> dict[str, int]:
        """Wait until no work queue (ingress, function, delay tier) holds a message.

        A hot loop keeps its message on a work queue for ever, so reaching zero is
        the positive signal that every message came to rest. Returns the last depths
        of the work queues (dead-letter queues and the sweep's token are not work).
        """
        deadline = time.monotonic() + timeout
        while True:
            work = {
                name: n
                for name, n in self.queue_depths().items()
                if not name.endswith(".dlq") and name != self.settings.queues.sweep
            }
            if not any(work.values()) or time.monotonic() > deadline:
                return work
            time.sleep(1)


@contextlib.contextmanager
def versioned(s3: S3Client, buckets: tuple[str, ...]) -> Iterator[None]:
    """Versioning on for ``buckets`` while the block runs, so every write leaves a version.

    That is how duplicated side effects are counted: a second PUT of one output
    is a second version, even when the last one looks right. Afterwards a
    bucket that was not versioned before is suspended again (S3 cannot go
    back to never-versioned); its versions stay for inspection.
    """
    before = {b: s3.get_bucket_versioning(Bucket=b).get("Status") for b in buckets}
    for bucket in buckets:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield
    finally:
        for bucket, status in before.items():
            if status != "Enabled":
                s3.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
                )
