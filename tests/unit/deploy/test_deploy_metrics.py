"""The Grafana dashboard and the alerts only name metrics that exist.

The services' metrics modules are imported and prometheus_client's registry is read, so a
renamed metric breaks this test instead of leaving an empty panel in production.
"""

from __future__ import annotations

import importlib
import json
import re

import yaml
from deploy_settings import ROOT
from prometheus_client import REGISTRY

METRICS_MODULES = [
    "tidings.gateway.metrics",
    "tidings.responder.metrics",
    "tidings.memory.metrics",
]
# Series from outside Tidings: the Kafka exporter (Strimzi kafkaExporter / compose's
# kafka-exporter) publishes the consumer lag that KEDA also scales on.
EXTERNAL = {"kafka_consumergroup_lag"}
DASHBOARD = ROOT / "k8s" / "base" / "monitoring" / "dashboards" / "tidings.json"
NAME = re.compile(r"\b((?:tidings|kafka)_[a-zA-Z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


def exported_series() -> set[str]:
    """Every series name the services' metrics can produce (by type, even before use)."""
    for module in METRICS_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _referenced(exprs: list[str]) -> set[str]:
    return {m for expr in exprs for m in NAME.findall(expr)}


def test_dashboard_names_only_exported_metrics() -> None:
    unknown = _referenced(_dashboard_exprs()) - exported_series() - EXTERNAL
    assert not unknown, f"dashboard metrics no service exports: {sorted(unknown)}"


def test_alerts_name_only_exported_metrics() -> None:
    unknown = _referenced(_alert_exprs()) - exported_series() - EXTERNAL
    assert not unknown, f"alert metrics no service exports: {sorted(unknown)}"


def test_dashboard_shows_what_operators_asked_for() -> None:
    used = _referenced(_dashboard_exprs())
    wanted = {
        "requests": "tidings_gateway_http_requests_total",
        "time to first token": "tidings_responder_first_token_seconds_bucket",
        "tokens/s": "tidings_responder_llm_tokens_per_second_bucket",
        "answers by source": "tidings_responder_answers_total",
        "backend errors": "tidings_responder_llm_backend_errors_total",
        "circuit state": "tidings_responder_llm_circuit_state",
        "consumer lag per group": "kafka_consumergroup_lag",
        "memory throughput": "tidings_memory_turns_stored_total",
        "open streams": "tidings_gateway_open_streams",
    }
    missing = {what for what, metric in wanted.items() if metric not in used}
    assert not missing, missing


def test_dashboard_panels_have_unique_ids_and_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


# Prometheus' naming rules: base units (seconds, bytes), never scaled ones.
NON_BASE_UNITS = re.compile(
    r"_(ms|millis|milliseconds|us|microseconds|ns|minutes|hours|days|kb|kib|mb|mib|gb|percent)"
    r"(_total)?$"
)


def test_every_metric_is_named_in_base_units() -> None:
    exported_series()  # imports the services' metrics modules
    names = {family.name for family in REGISTRY.collect() if family.name.startswith("tidings_")}
    assert len(names) > 20
    scaled = sorted(n for n in names if NON_BASE_UNITS.search(n))
    assert not scaled, f"metrics in scaled units (use _seconds / _bytes): {scaled}"


def test_circuit_state_is_a_gauge_labelled_by_state() -> None:
    exported_series()
    family = next(f for f in REGISTRY.collect() if f.name == "tidings_responder_llm_circuit_state")
    assert family.type == "gauge"
    from tidings.responder.metrics import CIRCUIT_STATE

    assert CIRCUIT_STATE._labelnames == ("backend", "state")
    (expr,) = [e for e in _dashboard_exprs() if "circuit_state" in e]
    assert "state" in expr and "== 1" in expr
