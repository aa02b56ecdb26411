"""``bucketfn status`` without servers: what the report says, how it reads, how it fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from prometheus_client import generate_latest
from pydantic import SecretStr

from runtime.cli import output
from runtime.cli.status import _ago, render
from runtime.core.events import ObjectEvent
from runtime.core.letters import DeadLetter
from runtime.core.records import ErrorInfo, Invocation
from runtime.core.settings import Settings
from runtime.http import Metrics
from runtime.ops.deadletters import Entry
from runtime.ops.status import Depth, Letters, Report, Row, Server, amqp_address, inflight

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(at: datetime, message: str) -> Entry:
    event = ObjectEvent(event_id="e1", event_name="s3:ObjectCreated:Put", bucket="in", key="a.csv")
    letter = DeadLetter(
        id="e1-1-0",
        function="f",
        function_version="v",
        reason="permanent error",
        invocation=Invocation(function="f", event=event),
        error=ErrorInfo(type="runtime.InputError", message=message, fingerprint="fp"),
        dead_lettered_at=at,
    )
    return Entry(queue="p.fn.f.dlq", letter=letter, record={})


def report() -> Report:
    ok = Server(name="rabbitmq", address="127.0.0.1:5672", ok=True, detail="ok")
    s3 = Server(name="s3", address="http://127.0.0.1:9000", ok=True, detail="ok")
    rt = Server(name="runtime", address="127.0.0.1:9464", ok=False, detail="unreachable")
    return Report(
        at=AT,
        servers=(ok, s3, rt),
        rows=(
            Row(
                function=None,
                queue="p.ingress",
                depth=Depth(messages=0, consumers=2),
                letters=Letters(queue="p.ingress.dlq", count=0),
            ),
            Row(
                function="f",
                queue="p.fn.f",
                depth=Depth(messages=7, consumers=1),
                retrying=2,
                inflight=3,
                letters=Letters(
                    queue="p.fn.f.dlq",
                    count=2,
                    read=True,
                    oldest=AT - timedelta(hours=5),
                    last=entry(AT - timedelta(minutes=12), "bad [bold]header[/bold]"),
                ),
            ),
            Row(
                function="g",
                queue="p.fn.g",
                depth=Depth(messages=0, consumers=0),
                letters=Letters(queue="p.fn.g.dlq", count=5_000),
            ),
        ),
    )


def test_the_report_as_json() -> None:
    doc = report().summary()
    assert doc["ok"] is True  # the runtime's endpoint is advisory
    assert doc["dispatcher"]["consumers"] == 2
    f, g = doc["functions"]
    assert (f["function"], f["messages"], f["in_flight"], f["retrying"]) == ("f", 7, 3, 2)
    dl = f["dead_letters"]
    assert (dl["count"], dl["oldest_age_seconds"], dl["read"]) == (2, 5 * 3600, True)
    assert dl["last_error"]["error"] == "bad [bold]header[/bold]"
    assert g["dead_letters"] == {
        "queue": "p.fn.g.dlq",
        "count": 5_000,
        "oldest_at": None,
        "oldest_age_seconds": None,
        "read": False,
        "last_error": None,
    }
    orjson.dumps(doc)  # plain data all the way down


def test_the_report_for_a_person() -> None:
    with output.out.capture() as captured:
        render(report())
    lines = captured.get().splitlines()
    f = next(ln for ln in lines if ln.startswith("f "))
    assert f.split()[1:7] == ["7", "1", "3", "2", "2", "5h"]
    assert "InputError: bad [bold]header[/bold] (12m ago)" in f  # markup shown, not applied
    g = next(ln for ln in lines if ln.startswith("g "))
    assert "?" in g.split() and "not read" in g
    assert any(ln.startswith("(dispatcher)") for ln in lines)


def test_a_missing_queue_fails_the_report() -> None:
    r = report()
    broken = Report(
        at=r.at, servers=r.servers, rows=(*r.rows, Row(function="h", queue="q", missing=("q",)))
    )
    assert not broken.ok
    with output.out.capture() as captured:
        render(broken)
    assert "run `bucketfn init`" in captured.get()


def test_ages_at_a_glance() -> None:
    assert [_ago(s) for s in (None, 0, 89, 90, 5399, 5400, 36 * 3600 - 1, 36 * 3600)] == [
        "-",
        "0s",
        "89s",
        "1m",
        "89m",
        "1h",
        "35h",
        "1d",
    ]


def test_in_flight_comes_from_the_runtime_s_own_exposition() -> None:
    m = Metrics(["a", "b"])
    m.inflight.labels("a").inc(3)
    assert inflight(generate_latest(m.registry).decode()) == {"a": 3, "b": 0}
    assert inflight("<html>not metrics</html>") == {}


def test_the_amqp_address_never_carries_credentials() -> None:
    s = Settings(amqp_url=SecretStr("amqps://user:s3cret@mq.example:5671/vhost"))
    assert amqp_address(s) == "mq.example:5671"
    assert amqp_address(Settings(amqp_url=SecretStr("amqp://u:p@h/"))) == "h:5672"


def test_status_against_no_servers_says_why_and_exits_1() -> None:
    env = {
        **os.environ,
        "BUCKETFN_AMQP_URL": "amqp://user:s3cret@127.0.0.1:1/",
        "BUCKETFN_S3_ENDPOINT": "http://127.0.0.1:1",
        "BUCKETFN_METRICS_ADDRESS": "127.0.0.1:1",
    }
    started = time.monotonic()
    shown = subprocess.run(
        [sys.executable, "-m", "runtime", "status", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert time.monotonic() - started < 20  # bounded: a person is waiting
    assert shown.returncode == 1, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert [(s["name"], s["ok"]) for s in doc["servers"]] == [
        ("rabbitmq", False),
        ("s3", False),
        ("runtime", False),
        ("notify", False),  # MinIO's counters of the events it failed to send
    ]
    assert "s3cret" not in shown.stdout + shown.stderr
    assert {f["function"] for f in doc["functions"]} >= {"csv_row_count"}
    assert all(f["known"] is False for f in doc["functions"])
    assert "Traceback" not in shown.stderr


def test_both_commands_are_listed() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "runtime", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "status" in shown.stdout and "watch" in shown.stdout
