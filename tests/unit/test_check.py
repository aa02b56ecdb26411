"""routes check: overlaps, cycles, self-triggers from the code; drift against a server's rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from functions import app as shipped
from runtime import App, ConfigError, Context, ObjectEvent, Router
from runtime.app.check import Finding, cycles, edges, self_trigger, static_findings
from runtime.app.drift import live_findings
from runtime.app.explain import explain
from runtime.app.rules import Rule, derive
from runtime.core.events import PUT

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:minio:sqs::BUCKETFN:amqp"
OWNER = "bucketfn:"


async def fn(event: ObjectEvent, ctx: Context) -> None: ...


def problems(found: list[Finding]) -> list[tuple[str, tuple[str, ...]]]:
    return [(f.kind, f.functions) for f in found if f.problem]


def test_the_shipped_functions_have_no_problems() -> None:
    found = static_findings(shipped, "job-outputs")
    assert problems(found) == []
    chains = [f.functions for f in found if f.kind == "chain"]
    assert ("to_staging", "to_curated") in chains  # raw → staging → curated, no way back


def test_an_undeclared_overlap_is_a_problem_with_a_key_that_shows_it() -> None:
    r = Router()
    r.function(bucket="in", prefix="uploads/", suffix=".csv", name="a")(fn)
    r.function(bucket="in", prefix="uploads/2026/", name="b")(fn)
    app = App([r])
    (finding,) = [f for f in static_findings(app, "out") if f.kind == "overlap"]
    assert finding.problem and finding.functions == ("a", "b")
    assert finding.example == "uploads/2026/example.csv"
    assert explain(app, "in", finding.example).runs == ["a", "b"]  # the example is true
    assert "overlaps='b'" in finding.message


def test_a_declared_fan_out_is_a_note() -> None:
    r = Router()
    r.function(bucket="in", prefix="uploads/", name="a")(fn)
    r.function(bucket="in", prefix="uploads/", name="audit", overlaps=["a"])(fn)
    found = static_findings(App([r]), "out")
    assert problems(found) == []
    assert [f.kind for f in found if f.functions == ("a", "audit")] == ["fan-out"]


def test_declaring_an_overlap_with_no_such_function_is_a_problem() -> None:
    r = Router()
    r.function(bucket="in", name="a", overlaps=["typo"])(fn)
    assert problems(static_findings(App([r]), "out")) == [("unknown-overlap", ("a",))]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"prefix": "a/"}, {"prefix": "b/"}),  # disjoint prefixes
        ({"suffix": ".csv"}, {"suffix": ".json"}),  # disjoint suffixes
        ({"events": [PUT]}, {"events": ["s3:ObjectCreated:Copy"]}),  # disjoint events
    ],
)
def test_routes_that_share_no_object_do_not_overlap(
    first: dict[str, object], second: dict[str, object]
) -> None:
    r = Router()
    r.function(bucket="in", name="a", **first)(fn)  # type: ignore[arg-type]
    r.function(bucket="in", name="b", **second)(fn)  # type: ignore[arg-type]
    assert problems(static_findings(App([r]), "out")) == []


def test_suffixes_that_can_both_match_overlap() -> None:
    r = Router()
    r.function(bucket="in", suffix=".gz", name="a")(fn)
    r.function(bucket="in", suffix=(".json", ".csv.gz"), name="b")(fn)
    (finding,) = [f for f in static_findings(App([r]), "out") if f.kind == "overlap"]
    assert finding.example == "example.csv.gz"


def test_a_cycle_through_two_buckets_is_found() -> None:
    r = Router()
    r.function(bucket="raw", name="a", writes_to=["staging"])(fn)
    r.function(bucket="staging", name="b", writes_to=["raw"])(fn)
    r.function(bucket="curated", name="c")(fn)
    found = static_findings(App([r]), "out")
    assert problems(found) == [("cycle", ("a", "b"))]
    (cycle,) = [f for f in found if f.kind == "cycle"]
    assert "a → b → a" in cycle.message


def test_a_cycle_through_the_output_bucket_is_found() -> None:
    # b triggers on a's result records and writes where a triggers: a → b → a.
    r = Router()
    r.function(bucket="in", name="a")(fn)
    r.function(bucket="job-outputs", prefix="a/", name="b", writes_to=["in"])(fn)
    assert cycles(["a", "b"], edges(App([r]), "job-outputs")) == [["a", "b", "a"]]


def test_one_cycle_per_group_shortest_first() -> None:
    r = Router()
    r.function(bucket="b1", name="a", writes_to=["b2"])(fn)
    r.function(bucket="b2", name="b", writes_to=["b3", "b1"])(fn)
    r.function(bucket="b3", name="c", writes_to=["b1"])(fn)
    r.function(bucket="b4", name="d", writes_to=["b1"])(fn)  # leads in, not part of it
    app = App([r])
    assert cycles([x.name for x in app.routes], edges(app, "out")) == [["a", "b", "a"]]


def test_events_outputs_never_raise_do_not_make_a_chain() -> None:
    r = Router()
    r.function(bucket="raw", name="a", writes_to=["staging"])(fn)
    r.function(bucket="staging", name="b", writes_to=["raw"], events=["s3:ObjectRemoved:Delete"])(
        fn
    )
    app = App([r])
    assert [(e.source, e.target) for e in edges(app, "out")] == [("b", "a")]
    assert problems(static_findings(app, "out")) == []


@pytest.mark.parametrize(
    ("bucket", "prefix", "writes_to"),
    [
        ("job-outputs", "", ()),
        ("job-outputs", "f/", ()),
        ("job-outputs", "f/sub/", ()),
        ("job-outputs", "f", ()),
        ("job-outputs", "g/", ()),
        ("in", "", ("in",)),
        ("in", "", ("other",)),
    ],
)
def test_self_trigger_says_what_init_refuses(
    bucket: str, prefix: str, writes_to: tuple[str, ...]
) -> None:
    r = Router()
    r.function(bucket=bucket, prefix=prefix, name="f", writes_to=writes_to)(fn)
    app = App([r])
    try:
        app.check("job-outputs")
        refused = False
    except ConfigError:
        refused = True
    assert (self_trigger(app.routes[0], "job-outputs") is not None) == refused
    assert (("self-trigger", ("f",)) in problems(static_findings(app, "job-outputs"))) == refused


def test_a_prefix_inside_another_shares_its_rule() -> None:
    r = Router()
    r.function(bucket="in", prefix="a/", suffix=".csv", name="wide")(fn)
    r.function(bucket="in", prefix="a/b/", suffix=".json", name="narrow")(fn)
    (note,) = [f for f in static_findings(App([r]), "out") if f.kind == "shares-rule"]
    assert note.functions == ("narrow",) and not note.problem
    assert "in/a/*" in note.message


def app_on_uploads() -> App:
    r = Router()
    r.function(bucket="in", prefix="uploads/", suffix=".csv", name="a")(fn)
    r.function(bucket="in", prefix="uploads/x/", suffix=".json", name="b")(fn)
    return App([r])


def test_the_rules_init_writes_leave_nothing_to_report() -> None:
    app = app_on_uploads()
    live: dict[str, list[Rule] | None] = dict(derive(app, ARN, OWNER))
    live["job-outputs"] = []
    assert live_findings(app, live, arn=ARN, owner=OWNER) == []


def test_a_missing_rule_is_drift_and_a_missing_bucket_says_so() -> None:
    app = app_on_uploads()
    assert problems(live_findings(app, {"in": []}, arn=ARN, owner=OWNER)) == [
        ("drift", ("a",)),
        ("drift", ("b",)),
    ]
    assert problems(live_findings(app, {"in": None}, arn=ARN, owner=OWNER)) == [
        ("missing-bucket", ("a", "b"))
    ]


def test_a_rule_for_another_target_or_part_of_the_keys_does_not_deliver() -> None:
    app = app_on_uploads()
    elsewhere = Rule(id=f"{OWNER}uploads/", arn="arn:other", events=frozenset([PUT]))
    narrower = Rule(id=f"{OWNER}x", arn=ARN, events=frozenset([PUT]), prefix="uploads/x/")
    kinds = {
        (f.kind, f.functions)
        for f in live_findings(app, {"in": [elsewhere, narrower]}, arn=ARN, owner=OWNER)
    }
    assert ("drift", ("a",)) in kinds  # neither delivers all of uploads/*.csv
    assert ("stale-rule", ()) in kinds  # and both are ours but not what the routes derive


def test_events_only_someone_else_s_rule_delivers_are_shadowed() -> None:
    app = app_on_uploads()
    foreign = Rule(
        id="someone:everything", arn=ARN, events=frozenset(["s3:ObjectCreated:*"]), prefix=""
    )
    found = live_findings(app, {"in": [foreign]}, arn=ARN, owner=OWNER)
    assert problems(found) == [("shadowed", ("a",)), ("shadowed", ("b",))]
    assert "'someone:everything'" in found[0].message
    ours = derive(app, ARN, OWNER)["in"]
    assert live_findings(app, {"in": [foreign, *ours]}, arn=ARN, owner=OWNER) == []


def test_a_suffix_rule_delivers_a_route_whose_every_suffix_it_admits() -> None:
    app = app_on_uploads()
    (a, b) = app.routes
    csv = Rule(id="x", arn=ARN, events=frozenset([PUT]), prefix="uploads/", suffix=".csv")
    assert csv.delivers(a, PUT, ARN)
    assert not csv.delivers(b, PUT, ARN)
    assert not csv.delivers(a, "s3:ObjectCreated:Copy", ARN)


def check(module: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "routes", "check", "--app", f"{module.stem}:app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "", "PYTHONPATH": f"{module.parent}:{ROOT}"},
    )


def test_cli_offline_check_exits_non_zero_on_a_cycle(tmp_path: Path) -> None:
    module = tmp_path / "loopy.py"
    module.write_text(
        "from runtime import App, Router\n"
        "router = Router()\n"
        "async def f(event, ctx): return None\n"
        "router.function(bucket='raw', name='a', writes_to=['staging'])(f)\n"
        "router.function(bucket='staging', name='b', writes_to=['raw'])(f)\n"
        "app = App([router])\n"
    )
    shown = check(module, "--offline", "--json")
    assert shown.returncode == 1, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert doc["ok"] is False and doc["server_checked"] is False
    assert [(p["kind"], p["functions"]) for p in doc["problems"]] == [("cycle", ["a", "b"])]
    table = check(module, "--offline")
    assert table.returncode == 1
    assert "a → b → a" in table.stdout and "1 problem:" in table.stdout


def test_cli_offline_check_passes_the_shipped_functions() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "runtime", "routes", "check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": ""},
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.splitlines()[-1].startswith("ok: ")
    assert "code only (--offline)" in shown.stdout


def test_cli_says_plainly_when_the_store_cannot_be_read() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "runtime", "routes", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "", "BUCKETFN_S3_ENDPOINT": "http://127.0.0.1:1"},  # nothing listens
    )
    assert shown.returncode == 2
    assert "bucketfn: reading notification rules" in shown.stderr
    assert "Traceback" not in shown.stderr
