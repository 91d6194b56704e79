"""The kustomize targets under test and small lookups over their rendered objects."""

from __future__ import annotations

from typing import Any

from deploy_kustomize import Doc
from deploy_settings import ROOT

K8S = ROOT / "k8s"
TARGETS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod-vllm": K8S / "overlays" / "prod-vllm",
    "prod-mesh": K8S / "overlays" / "prod-mesh",
}
# Pods that run Tidings' own images.
TIDINGS_IMAGES = {"gateway", "responder", "memory", "store"}


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def config(docs: list[Doc]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", "tidings-config")["data"])


def workloads(docs: list[Doc]) -> list[Doc]:
    """Deployments and StatefulSets (the pods this repository runs; Strimzi makes its own)."""
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]


def pod_labels(workload: Doc) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, and matchExpressions with In) against labels."""
    assert not selector.keys() - {"matchLabels", "matchExpressions"}, selector
    match = selector.get("matchLabels", {})
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return all(labels.get(k) == v for k, v in match.items())
