"""The shipped alert rules and Grafana dashboard (deploy/helm/autoloader/files/): the rule
file has Prometheus's structure, every expression parses as PromQL, and every metric they name
is one the services export (or one of the named outside exporters')."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

pytestmark = pytest.mark.unit

FILES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "autoloader" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"

# The modules that define every service's metrics.
SERVICES = (
    "autoloader_api.app",
    "autoloader_api.relay",
    "autoloader_api.routes.operations",
    "autoloader_sync.handler",
    "autoloader_sync.commands",
    "autoloader_sync.watchdog",
    "autoloader_discovery.consumer",
    "autoloader_processor.pool",
    "shared.consumers",
    "shared.metrics",
)
# Metrics of other exporters that the rules use, with where they come from.
OUTSIDE = {"kube_pod_container_status_restarts_total": "kube-state-metrics"}
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}


def exported() -> set[str]:
    """Every sample name the services' registries can produce (counters' _total, histograms'
    _bucket, _sum and _count, ...)."""
    for module in SERVICES:
        importlib.import_module(module)
    # The registry's names of every collector, read without collecting (no sample yet needed).
    names = {name for names in REGISTRY._collector_to_names.values() for name in names}
    # A counter's family name is not a sample of its own: only its _total (and _created) are.
    samples = {name for name in names if f"{name}_total" not in names}
    return {name for name in samples if name.startswith("autoloader_")}


def metric_names(node: Any) -> set[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        assert node.name is not None, f"a selector without a metric name: {node}"
        return {node.name}
    names: set[str] = set()
    for child in ("vector_selector", "expr", "lhs", "rhs", "param", "args"):
        value = getattr(node, child, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                names |= metric_names(item)
    return names


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    assert set(loaded) == {"groups"}
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_the_walker_finds_every_selector_of_an_expression() -> None:
    expression = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / on() (b{x="1"} + -c) > '
        "max_over_time(d[10m:1m])"
    )
    assert metric_names(promql_parser.parse(expression)) == {"a_bucket", "b", "c", "d"}


def test_every_rule_is_an_alert_with_a_runbook_and_a_valid_expression() -> None:
    runbooks = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text().lower()
    for rule in rules():
        assert set(rule) <= RULE_KEYS and {"alert", "expr"} <= set(rule), rule
        promql_parser.parse(rule["expr"])
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"## {rule['alert'].lower()}" in runbooks, f"no runbook for {rule['alert']}"


def test_every_metric_the_rules_and_the_dashboard_name_is_exported() -> None:
    known = exported() | set(OUTSIDE)
    named: dict[str, set[str]] = {}
    for rule in rules():
        named[rule["alert"]] = metric_names(promql_parser.parse(rule["expr"]))
    for expression in dashboard_expressions():
        named[expression] = metric_names(promql_parser.parse(expression))
    unknown = {where: names - known for where, names in named.items() if names - known}
    assert unknown == {}
    assert all(named.values()), "an expression that names no metric"


def test_promtool_accepts_the_rules_when_it_is_built() -> None:
    """`make promtool` builds Prometheus's own checker from the Go module proxy."""
    built = Path.home() / ".cache" / "autoloader" / "go" / "promtool-v0.316.0" / "promtool"
    promtool = shutil.which(os.environ.get("PROMTOOL", str(built)))
    if promtool is None:
        pytest.skip("promtool is not built: run `make promtool` (needs Go)")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
