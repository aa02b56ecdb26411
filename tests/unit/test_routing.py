"""Routes: validation at import, matching, the loop check, notification rules."""

from __future__ import annotations

import pytest

from runtime import App, ConfigError, Context, ObjectEvent, Router
from runtime.core.events import COPY, PUT
from runtime.core.names import Meta
from runtime.ops.provision import notification_rules


def ev(bucket: str, key: str, name: str = PUT, meta: dict[str, str] | None = None) -> ObjectEvent:
    return ObjectEvent(event_id="x", event_name=name, bucket=bucket, key=key, metadata=meta or {})


async def fn(event: ObjectEvent, ctx: Context) -> None:
    return None


def make(**kw: object) -> App:
    router = Router()
    router.function(**kw)(fn)  # type: ignore[arg-type]
    return App([router])


def test_matches_bucket_prefix_suffix_and_event_type() -> None:
    app = make(bucket="in", prefix="up/", suffix=(".csv", ".csv.gz"))
    assert [r.name for r in app.match(ev("in", "up/a.csv"))] == ["fn"]
    assert app.match(ev("in", "up/a.csv.gz"))
    assert not app.match(ev("in", "up/a.json"))
    assert not app.match(ev("in", "down/a.csv"))
    assert not app.match(ev("out", "up/a.csv"))
    assert not app.match(ev("in", "up/a.csv", "s3:ObjectCreated:PutTagging"))
    assert app.match(ev("in", "up/a.csv", COPY))


def test_an_object_a_function_wrote_never_triggers_that_function() -> None:
    app = make(bucket="in")
    assert not app.match(ev("in", "a", meta={Meta.FUNCTION: "fn"}))
    assert app.match(ev("in", "a", meta={Meta.FUNCTION: "other"}))


def test_fan_out_to_several_functions() -> None:
    r = Router()

    @r.function(bucket="in", prefix="a/")
    async def one(event: ObjectEvent, ctx: Context) -> None: ...

    @r.function(bucket="in")
    async def two(event: ObjectEvent, ctx: Context) -> None: ...

    assert [x.name for x in App([r]).match(ev("in", "a/x"))] == ["one", "two"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket": ""},
        {"bucket": "a/b"},
        {"bucket": "b", "events": ["s3:ObjectCreated:*"]},
        {"bucket": "b", "events": ["ObjectCreated:Put"]},
        {"bucket": "b", "events": []},
        {"bucket": "b", "name": "Bad-Name"},
    ],
)
def test_bad_options_fail_at_import(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make(**kwargs)


def test_sync_handler_is_refused() -> None:
    def sync(event: ObjectEvent, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="async def"):
        Router().function(bucket="b")(sync)  # type: ignore[arg-type]


def test_duplicate_names_are_refused() -> None:
    r1, r2 = Router(), Router()
    r1.function(bucket="a")(fn)
    r2.function(bucket="b")(fn)
    with pytest.raises(ConfigError, match="two functions"):
        App([r1, r2])


def test_loop_check_refuses_a_route_on_its_own_outputs() -> None:
    make(bucket="job-outputs", prefix="other/").check("job-outputs")
    with pytest.raises(ConfigError, match="trigger itself"):
        make(bucket="job-outputs", prefix="fn/").check("job-outputs")
    with pytest.raises(ConfigError, match="trigger itself"):
        make(bucket="job-outputs").check("job-outputs")
    with pytest.raises(ConfigError, match="trigger itself"):
        make(bucket="raw", writes_to=["raw"]).check("job-outputs")


def test_version_is_the_code_hash() -> None:
    (route,) = make(bucket="b").routes
    assert len(route.version) == 12


def test_notification_rules_cover_every_route_without_overlap() -> None:
    r = Router()
    for name, prefix in [("a", "uploads/"), ("b", "uploads/csv/"), ("c", "other/")]:
        r.function(bucket="in", prefix=prefix, name=name)(fn)
    r.function(bucket="raw", name="d")(fn)
    rules = notification_rules(App([r]), "arn:minio:sqs::X:amqp", "bucketfn:")
    prefixes = {
        rule["Id"]: rule.get("Filter", {}).get("Key", {}).get("FilterRules", [{}])[0].get("Value")
        for rule in rules["in"]
    }
    assert prefixes == {"bucketfn:other/": "other/", "bucketfn:uploads/": "uploads/"}
    assert rules["raw"][0]["Id"] == "bucketfn:*" and "Filter" not in rules["raw"][0]
    assert "s3:ObjectCreated:PutTagging" not in rules["in"][0]["Events"]
    assert "s3:ObjectCreated:CompleteMultipartUpload" in rules["in"][0]["Events"]


def test_init_refuses_a_timeout_the_broker_would_cut_off() -> None:
    # to_staging used to allow 3600 s, past RabbitMQ's 30-minute consumer timeout:
    # the broker would close the channel and redeliver it, again and again.
    from functions import app as functions_app
    from runtime import RetryPolicy
    from runtime.core.settings import Settings
    from runtime.ops.provision import check_timeouts

    check_timeouts(functions_app, Settings())  # the shipped functions fit
    r = Router()

    @r.function(bucket="b", retry=RetryPolicy(timeout=3600))
    async def slow(event: ObjectEvent, ctx: Context) -> None:
        return None

    with pytest.raises(ConfigError, match="consumer_timeout"):
        check_timeouts(App([r]), Settings())
    check_timeouts(App([r]), Settings(consumer_timeout=7200))


def test_the_loop_check_sees_a_trigger_on_the_functions_own_outputs() -> None:
    # Before, the check compared against "looper/%00/" (safe_key of ""), so a route
    # on "looper/x/" in the output bucket passed: outputs for a source key "x/..."
    # land under "looper/x/..." and re-trigger it.
    r = Router()

    @r.function(bucket="job-outputs", prefix="looper/x/")
    async def looper(event: ObjectEvent, ctx: Context) -> None:
        return None

    with pytest.raises(ConfigError, match="trigger itself"):
        App([r]).check("job-outputs")


def test_a_function_cannot_take_a_name_bucketfn_uses_for_its_own_records() -> None:
    # A function named "jobs" would write its records under job-outputs/jobs/,
    # where the jobs API keeps every job's record.
    r = Router()
    with pytest.raises(ConfigError, match="jobs"):

        @r.function(bucket="b", name="jobs")
        async def anything(event: ObjectEvent, ctx: Context) -> None:
            return None
