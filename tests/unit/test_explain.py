"""routes explain: which functions an object runs, and the first reason for each other one."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from functions import app as shipped
from runtime import App, Context, ObjectEvent, Router
from runtime.app.explain import explain, parse_url
from runtime.core.events import DATA_EVENTS, PUT
from runtime.core.names import Meta

ROOT = Path(__file__).resolve().parents[2]


async def fn(event: ObjectEvent, ctx: Context) -> None: ...


def reasons(app: App, bucket: str, key: str, **kw: str) -> dict[str, str | None]:
    found = explain(app, bucket, key, **kw)
    return {v.function: v.check for v in found.verdicts}


def test_a_csv_upload_runs_only_the_row_counter_and_says_why_not_the_others() -> None:
    found = explain(shipped, "job-inputs", "uploads/sales 2026.csv")
    assert found.runs == ["csv_row_count"]
    by_name = {v.function: v for v in found.verdicts}
    assert by_name["json_canonicalize"].check == "suffix"
    assert ".json" in (by_name["json_canonicalize"].reason or "")
    assert by_name["to_staging"].check == "bucket"
    assert by_name["to_staging"].reason == "triggers on 'raw'"


def test_each_check_in_order_bucket_prefix_suffix_event_loop() -> None:
    r = Router()
    r.function(bucket="in", prefix="a/", suffix=".csv", events=[PUT], name="f")(fn)
    app = App([r])
    assert reasons(app, "other", "b/x.txt") == {"f": "bucket"}  # the first that fails
    assert reasons(app, "in", "b/x.txt") == {"f": "prefix"}
    assert reasons(app, "in", "a/x.txt") == {"f": "suffix"}
    assert reasons(app, "in", "a/x.csv", event="s3:ObjectCreated:Copy") == {"f": "event"}
    assert reasons(app, "in", "a/x.csv", written_by="f") == {"f": "loop"}
    assert reasons(app, "in", "a/x.csv", written_by="g") == {"f": None}


def test_an_output_bucket_key_names_its_writer() -> None:
    r = Router()
    r.function(bucket="job-outputs", prefix="a/", name="b")(fn)
    r.function(bucket="job-outputs", prefix="zz/", name="a")(fn)
    found = explain(App([r]), "job-outputs", "a/uploads/x.csv/result.json")
    assert found.written_by == "a"
    assert found.runs == ["b"]  # the prefix is b's; a wrote it but does not trigger there


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b/k", ("b", "k")),
        ("s3://b/dir/with space/x.csv", ("b", "dir/with space/x.csv")),
        ("s3://b/%2F", ("b", "%2F")),  # a key is taken as stored, never URL-decoded
    ],
)
def test_urls_parse(url: str, expected: tuple[str, str]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["b/k", "s3://b", "s3://b/", "s3:///k", "http://b/k"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3://bucket/key"):
        parse_url(url)


def test_explain_agrees_with_the_router_on_every_combination() -> None:
    r = Router()
    r.function(bucket="in", prefix="a/", suffix=(".csv", ".csv.gz"), name="p")(fn)
    r.function(bucket="in", name="q", events=[PUT])(fn)
    r.function(bucket="in", prefix="a/b/", name="s")(fn)
    r.function(bucket="out", suffix=".gz", name="t")(fn)
    app = App([r])
    buckets = ["in", "out", "x"]
    keys = ["a/x.csv", "a/b/x.csv.gz", "a/b/", "b/x.csv", "x.gz", "a/x.json", ""]
    events = [*sorted(DATA_EVENTS), "s3:ObjectRemoved:Delete"]
    writers = [None, "p", "q", "s", "t", "zz"]
    for bucket, key, event, writer in itertools.product(buckets, keys, events, writers):
        ev = ObjectEvent(
            event_id="e",
            event_name=event,
            bucket=bucket,
            key=key,
            metadata={Meta.FUNCTION: writer} if writer else {},
        )
        found = explain(app, bucket, key, event=event, written_by=writer, output_bucket="none")
        assert found.runs == [route.name for route in app.match(ev)], (bucket, key, event, writer)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "routes", "explain", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "", "BUCKETFN_QUEUE_PREFIX": "explain-test"},
    )


def test_cli_explains_as_json() -> None:
    shown = cli("s3://raw/orders/2026-01-01/a.csv", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert doc["runs"] == ["to_staging"]
    assert doc["event"] == PUT
    by_name = {f["function"]: f for f in doc["functions"]}
    assert by_name["csv_row_count"] == {
        "function": "csv_row_count",
        "runs": False,
        "check": "bucket",
        "reason": "triggers on 'job-inputs'",
    }


def test_cli_says_when_an_object_is_a_function_s_own_output() -> None:
    shown = cli("s3://staging/orders/a.parquet", "--written-by", "to_curated")
    assert shown.returncode == 0, shown.stderr
    assert "written by to_curated" in shown.stdout
    assert "loop: written by to_curated itself" in shown.stdout
    assert "runs: nothing" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job-inputs/uploads/x.csv"], "expected s3://bucket/key"),
        (["s3://job-inputs/uploads/x.csv", "--event", "s3:ObjectCreated:*"], "explicit s3:"),
    ],
)
def test_cli_refuses_bad_input_clearly(args: list[str], message: str) -> None:
    shown = cli(*args)
    assert shown.returncode == 2
    assert message in shown.stderr
    assert "Traceback" not in shown.stderr
