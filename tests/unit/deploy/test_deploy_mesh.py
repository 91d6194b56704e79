"""The Istio overlay (k8s/overlays/prod-mesh): strict mTLS, deny by default, and
AuthorizationPolicies that allow exactly the calls the NetworkPolicies allow, by identity."""

from __future__ import annotations

import pytest
from deploy_kustomize import Doc, render
from deploy_targets import TARGETS, config, one, pod_labels, selects, workloads

Edge = tuple[str, str, int]  # caller workload, callee workload, port


@pytest.fixture(scope="module")
def mesh() -> list[Doc]:
    return render(TARGETS["prod-mesh"])


def _policies(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] == "AuthorizationPolicy"]


def _selected(docs: list[Doc], selector: dict[str, object]) -> list[str]:
    return [w["metadata"]["name"] for w in workloads(docs) if selects(selector, pod_labels(w))]


def _network_edges(docs: list[Doc]) -> set[Edge]:
    """Pod-to-pod calls inside the namespace the NetworkPolicies admit (ingress rules)."""
    edges = set()
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        callees = _selected(docs, policy["spec"]["podSelector"])
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if set(peer) != {"podSelector"}:
                    continue  # other namespaces (ingress-nginx, monitoring) come in below
                for caller in _selected(docs, peer["podSelector"]):
                    for port in rule["ports"]:
                        edges |= {(caller, callee, port["port"]) for callee in callees}
    return edges


def _mesh_edges(docs: list[Doc]) -> set[Edge]:
    """The same calls as the AuthorizationPolicies allow them: caller by service account."""
    by_account = {
        f"cluster.local/ns/tidings/sa/{w['spec']['template']['spec']['serviceAccountName']}": w[
            "metadata"
        ]["name"]
        for w in workloads(docs)
    }
    edges = set()
    for policy in _policies(docs):
        spec = policy["spec"]
        if not spec:
            continue
        callees = _selected(docs, spec["selector"])
        for rule in spec["rules"]:
            principals = [p for s in rule["from"] for p in s["source"].get("principals", [])]
            ports = [int(p) for op in rule["to"] for p in op["operation"].get("ports", [])]
            for principal in principals:
                if principal in by_account:
                    caller = by_account[principal]
                    edges |= {(caller, callee, port) for callee in callees for port in ports}
    return edges


def test_strict_mtls_for_the_namespace_and_deny_by_default(mesh: list[Doc]) -> None:
    namespace = one(mesh, "Namespace", "tidings")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    peer = one(mesh, "PeerAuthentication", "default")
    assert peer["spec"] == {"mtls": {"mode": "STRICT"}}  # no selector: every workload
    assert one(mesh, "AuthorizationPolicy", "allow-nothing")["spec"] == {}
    for policy in _policies(mesh):
        assert policy["spec"].get("action", "ALLOW") == "ALLOW"


def test_authorization_policies_allow_exactly_the_network_policy_edges(mesh: list[Doc]) -> None:
    network = _network_edges(mesh)
    assert ("gateway", "memory", 8001) in network and ("memory", "qdrant", 6333) in network
    assert _mesh_edges(mesh) == network


def test_every_meshed_workload_has_its_policy_and_every_policy_a_workload(
    mesh: list[Doc],
) -> None:
    covered: set[str] = set()
    for policy in _policies(mesh):
        if policy["spec"]:
            selected = _selected(mesh, policy["spec"]["selector"])
            assert selected, f"{policy['metadata']['name']} selects no workload"
            covered |= set(selected)
    assert covered == {w["metadata"]["name"] for w in workloads(mesh)}


def test_only_the_ingress_controller_reaches_the_gateway_from_outside(mesh: list[Doc]) -> None:
    rules = one(mesh, "AuthorizationPolicy", "gateway")["spec"]["rules"]
    api = [r for r in rules if any("principals" in s["source"] for s in r["from"])]
    ingress_nginx = "cluster.local/ns/ingress-nginx/sa/ingress-nginx"
    assert api == [
        {
            "from": [{"source": {"principals": [ingress_nginx]}}],
            "to": [{"operation": {"ports": ["8000"]}}],
        }
    ]
    annotations = one(mesh, "Ingress", "tidings")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/service-upstream"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/upstream-vhost"] == (
        "gateway.tidings.svc.cluster.local"
    )


def test_monitoring_may_only_read_metrics_over_mtls(mesh: list[Doc]) -> None:
    for policy in _policies(mesh):
        for rule in policy["spec"].get("rules", []):
            if any("namespaces" in s["source"] for s in rule["from"]):
                assert rule["from"] == [{"source": {"namespaces": ["monitoring"]}}]
                (to,) = rule["to"]
                operation = {k: v for k, v in to["operation"].items() if k != "ports"}
                assert operation == {"methods": ["GET"], "paths": ["/metrics"]}
    scraped = set()
    for monitor in (d for d in mesh if d["kind"] == "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["scheme"] == "https"
            assert endpoint["tlsConfig"]["certFile"].startswith("/etc/prom-certs/")
        for service in (d for d in mesh if d["kind"] == "Service"):
            if selects(monitor["spec"]["selector"], service["metadata"].get("labels", {})):
                scraped |= set(_selected(mesh, {"matchLabels": service["spec"]["selector"]}))
    readable = {
        name
        for policy in _policies(mesh)
        if policy["spec"]
        for rule in policy["spec"]["rules"]
        if rule["to"][0]["operation"].get("paths") == ["/metrics"]
        for name in _selected(mesh, policy["spec"]["selector"])
    }
    assert scraped and scraped <= readable


def test_monitoring_reads_memory_only_on_its_metrics_port(mesh: list[Doc]) -> None:
    settings = config(mesh)
    api_port, metrics_port = settings["MEMORY_PORT"], settings["MEMORY_METRICS_PORT"]
    rules = one(mesh, "AuthorizationPolicy", "memory")["spec"]["rules"]
    by_source = {
        tuple(sorted(p for s in r["from"] for p in s["source"].get("principals", [])))
        or tuple(n for s in r["from"] for n in s["source"].get("namespaces", [])): r["to"]
        for r in rules
    }
    callers = ("cluster.local/ns/tidings/sa/gateway", "cluster.local/ns/tidings/sa/responder")
    assert by_source == {
        callers: [{"operation": {"ports": [api_port]}}],
        ("monitoring",): [
            {"operation": {"methods": ["GET"], "paths": ["/metrics"], "ports": [metrics_port]}}
        ],
    }
    assert api_port != metrics_port


def test_kafka_stays_outside_the_mesh(mesh: list[Doc]) -> None:
    no_sidecar = {"sidecar.istio.io/inject": "false"}
    pool = one(mesh, "KafkaNodePool", "dual-role")["spec"]
    assert pool["template"]["pod"]["metadata"]["annotations"] == no_sidecar
    kafka = one(mesh, "Kafka", "tidings")["spec"]
    for part in ("entityOperator", "kafkaExporter"):
        assert kafka[part]["template"]["pod"]["metadata"]["annotations"] == no_sidecar


def test_sidecars_reach_istiod_through_default_deny(mesh: list[Doc]) -> None:
    policy = one(mesh, "NetworkPolicy", "istio-control-plane")["spec"]
    assert policy["podSelector"] == {}
    (rule,) = policy["egress"]
    assert rule["ports"] == [{"port": 15012, "protocol": "TCP"}]


def test_the_mesh_is_only_in_the_mesh_overlay() -> None:
    for name in ("base", "dev", "prod-vllm"):
        kinds = {d["kind"] for d in render(TARGETS[name])}
        assert not kinds & {"PeerAuthentication", "AuthorizationPolicy"}, name
