"""The Grafana dashboard (infra/grafana/bucketfn.json) asks only for what the runtime exports.

Every expression is parsed by a real PromQL parser (``promql-parser``, the
parser of GreptimeDB's PromQL engine) and each metric it selects must be a
series of the runtime's own registry: :class:`~runtime.http.Metrics` with the
queue collector registered, as ``bucketfn run`` builds it, read back from the
registry rather than listed by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from functions import app
from runtime.core.settings import Settings
from runtime.http import Metrics, QueueStats

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra/grafana/bucketfn.json"
# Grafana's interval variables stand where PromQL wants a duration.
INTERVALS = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}"
)
# What each type of family exposes (prometheus_client's exposition names).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    """Every series name the runtime's registry exposes, samples or not yet."""
    metrics = Metrics(r.name for r in app.routes)
    QueueStats(Settings(), app, registry=metrics.registry)
    names = {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SUFFIXES[family.type]
    }
    # The queue collector's families carry no sample until a refresh: named all the same.
    assert "bucketfn_deadletter_oldest_age_seconds" in names
    return frozenset(names)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]


def selected(expr: str) -> list[str]:
    """The metric names an expression selects (it must parse as PromQL)."""
    tree = promql_parser.parse(INTERVALS.sub("5m", expr))
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            names.append(node.name)

    promql_parser.walk(tree, visit)
    return names


def unknown(expr: str, exported: frozenset[str]) -> list[str]:
    names = selected(expr)
    assert names, f"selects no metric: {expr}"
    return [n for n in names if n not in exported]


def test_every_expression_names_only_exported_metrics(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> None:
    exprs = expressions(dashboard)
    assert len(exprs) >= 10
    assert {e: unknown(e, exported) for e in exprs if unknown(e, exported)} == {}


def test_the_check_catches_a_metric_the_runtime_lacks(exported: frozenset[str]) -> None:
    # The control: a plausible name that is not exported, and one misspelt suffix.
    assert unknown("sum(rate(bucketfn_invocation_total[5m]))", exported) == [
        "bucketfn_invocation_total"
    ]
    assert unknown("bucketfn_queue_messages_total", exported) == ["bucketfn_queue_messages_total"]
    with pytest.raises(ValueError, match=r".+"):
        selected("sum(rate(bucketfn_invocations_total[5m])")


def test_the_dashboard_shows_what_the_issue_asks(dashboard: dict[str, Any]) -> None:
    exprs = expressions(dashboard)
    names = {n for e in exprs for n in selected(e)}
    assert names >= {
        "bucketfn_invocations_total",  # throughput and outcomes per function
        "bucketfn_invocation_duration_seconds_bucket",  # duration quantiles
        "bucketfn_event_lag_seconds_bucket",  # lag
        "bucketfn_event_loop_lag_seconds",
        "bucketfn_queue_messages",  # queue and DLQ depth
        "bucketfn_deadletter_oldest_age_seconds",  # DLQ oldest age
    }
    quantiles = [e for e in exprs if e.startswith("histogram_quantile(")]
    assert any("_duration_seconds_bucket" in e for e in quantiles)
    assert all(" le" in e or "(le" in e for e in quantiles)  # quantiles keep the buckets apart
    outcomes = [e for e in exprs if "bucketfn_invocations_total" in e and "outcome" in e]
    assert outcomes


def test_the_function_variable_reads_an_exported_label(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> None:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "function"]
    match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
    assert match and match[1] in exported and match[2] == "function"


def test_every_panel_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _panels(dashboard["panels"]) if p.get("targets")]
    assert {p["datasource"]["uid"] for p in panels} == {"${datasource}"}
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
