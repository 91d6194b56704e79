"""Safe by default (issue 18, item 5) and the operators' conventions (issue 20), per overlay:
TLS on the Ingress and only the public routes behind it, JWT in production, a default-deny
NetworkPolicy that every workload is named in, Qdrant locked with a key on a read-only root
filesystem at the client's version, private-registry settings, and KEDA/Strimzi as their
current releases read them."""

from __future__ import annotations

import re

import pytest
from deploy_kustomize import Doc, render
from deploy_settings import ROOT
from deploy_targets import (
    TARGETS,
    TIDINGS_IMAGES,
    config,
    one,
    pod_labels,
    selects,
    workloads,
)

# Gateway routes that stay inside the cluster: probes, metrics (FastAPI's docs are off the
# decorators and never routed either).
INTERNAL_ROUTES = {"/health", "/ready", "/metrics"}


def _gateway_routes() -> set[str]:
    """Paths the gateway's routers declare (`@router.get("/x")` under `APIRouter(prefix=)`)."""
    routes = set()
    for path in (ROOT / "services" / "gateway").rglob("*.py"):
        text = path.read_text()
        prefix = re.search(r"APIRouter\((?:[^)]*?)prefix=\"([^\"]+)\"", text)
        for route in re.findall(r"@router\.(?:get|post|put|patch|delete)\(\s*\"([^\"]+)\"", text):
            routes.add((prefix.group(1) if prefix else "") + route)
    return routes


def _routed(ingress: Doc, path: str) -> bool:
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            if entry["pathType"] == "Exact" and path == entry["path"]:
                return True
            if entry["pathType"] == "Prefix":
                prefix = entry["path"].rstrip("/")
                if path == prefix or path.startswith(prefix + "/"):
                    return True
    return False


def test_ingress_serves_tls_from_cert_manager(docs: list[Doc]) -> None:
    ingress = one(docs, "Ingress", "tidings")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    hosts = {h for rule in ingress["spec"]["rules"] for h in [rule["host"]]}
    (tls,) = ingress["spec"]["tls"]
    assert set(tls["hosts"]) == hosts and tls["secretName"]


def test_ingress_routes_every_public_route_and_nothing_internal(docs: list[Doc]) -> None:
    ingress = one(docs, "Ingress", "tidings")
    routes = _gateway_routes()
    assert {"/chat", "/metrics", "/health", "/v1/chat/completions", "/"} <= routes
    for route in routes:
        # A path parameter ({session_id}) stands for one path segment.
        concrete = re.sub(r"\{[^}]+\}", "x", route)
        assert _routed(ingress, concrete) == (route not in INTERNAL_ROUTES), route
    for hidden in ("/docs", "/redoc", "/openapi.json", "/metrics", "/health", "/ready"):
        assert not _routed(ingress, hidden), hidden


PRODUCTION = sorted(name for name in TARGETS if name.startswith("prod-"))


@pytest.mark.parametrize("name", PRODUCTION)
def test_production_overlays_require_jwt(name: str) -> None:
    settings = config(render(TARGETS[name]))
    assert settings["GATEWAY_AUTH"] == "jwt"
    assert settings["GATEWAY_JWT_JWKS_URL"].startswith("https://")
    assert settings["GATEWAY_JWT_ISSUER"] and settings["GATEWAY_JWT_AUDIENCE"]


def test_default_deny_and_every_workload_named_by_a_policy(docs: list[Doc]) -> None:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = one(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    for workload in workloads(docs):
        labels = pod_labels(workload)
        named = [
            p
            for p in policies
            if p["metadata"]["name"] != "default-deny"
            and p["spec"]["podSelector"]
            and selects(p["spec"]["podSelector"], labels)
        ]
        assert named, f"{workload['metadata']['name']} is closed by default-deny: add its policy"


def test_strimzi_pods_may_reach_each_other_and_dns(docs: list[Doc]) -> None:
    egress = one(docs, "NetworkPolicy", "kafka-egress")["spec"]
    assert egress["podSelector"] == {"matchLabels": {"strimzi.io/cluster": "tidings"}}
    peers = [rule["to"] for rule in egress["egress"]]
    assert [{"podSelector": {"matchLabels": {"strimzi.io/cluster": "tidings"}}}] in peers
    ports = {p["port"] for rule in egress["egress"] for p in rule.get("ports", [])}
    assert 53 in ports


def _locked_version(package: str) -> str:
    text = (ROOT / "requirements" / "memory.txt").read_text()
    match = re.search(rf"^{package}==([\d.]+)", text, re.M)
    assert match, package
    return match.group(1)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def test_qdrant_runs_read_only_with_a_key_at_the_clients_version(docs: list[Doc]) -> None:
    qdrant = one(docs, "StatefulSet", "qdrant")
    (container,) = qdrant["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    # The init marker goes to a writable volume, not next to the binary.
    init_dir = env["QDRANT_INIT_FILE_PATH"]["value"].rsplit("/", 1)[0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {init_dir, "/qdrant/storage", "/qdrant/snapshots", "/tmp"} <= mounts
    for variable, key in (
        ("QDRANT__SERVICE__API_KEY", "QDRANT_API_KEY"),
        ("QDRANT__SERVICE__READ_ONLY_API_KEY", "QDRANT_READ_ONLY_API_KEY"),
    ):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "tidings-secrets", "key": key}  # no default key, no "optional"
    # The memory worker sends the same key (QDRANT_API_KEY from the same Secret).
    memory = one(docs, "Deployment", "memory")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "tidings-secrets", "optional": True}} in memory["envFrom"]
    # Server and client on the same minor release (the client warns otherwise).
    server = container["image"].split(":")[1].removesuffix("-unprivileged")
    assert _minor(server) == _minor(_locked_version("qdrant-client"))
    monitor = one(docs, "ServiceMonitor", "qdrant")["spec"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["authorization"]["credentials"] == {
        "name": "tidings-secrets",
        "key": "QDRANT_READ_ONLY_API_KEY",
    }
    services = [
        d
        for d in docs
        if d["kind"] == "Service" and selects(monitor["selector"], d["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in services] == ["qdrant"]  # not the headless one too


def test_compose_runs_the_same_qdrant_as_kubernetes() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    image = compose["services"]["qdrant"]["image"]
    k8s_image = one(render(TARGETS["base"]), "StatefulSet", "qdrant")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image.split(":")[1] == k8s_image.split(":")[1].removesuffix("-unprivileged")


@pytest.mark.parametrize("name", PRODUCTION)
def test_production_images_come_from_a_registry_with_a_pull_secret(name: str) -> None:
    docs = render(TARGETS[name])
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        own = [
            c["image"]
            for c in pod["containers"]
            if c["image"].split("/")[-1].split(":")[0] in TIDINGS_IMAGES
            or c["image"].startswith("tidings-")
        ]
        for image in own:
            registry, _, rest = image.partition("/")
            assert "." in registry and rest, image  # a registry host, not Docker Hub
            assert re.search(r":[\w.-]+$", image), image  # a tag
        if own:
            account = accounts[pod["serviceAccountName"]]
            assert account["imagePullSecrets"], workload["metadata"]["name"]


def test_keda_sets_no_cooldown_it_would_ignore(docs: list[Doc]) -> None:
    scaled = one(docs, "ScaledObject", "responder")["spec"]
    # cooldownPeriod only delays the step to zero replicas.
    if scaled.get("minReplicaCount", 0) >= 1:
        assert "cooldownPeriod" not in scaled


def test_strimzi_resources_use_the_v1_api_without_retired_annotations(docs: list[Doc]) -> None:
    strimzi = [d for d in docs if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["kind"] for d in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    for doc in strimzi:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        annotations = doc["metadata"].get("annotations", {})
        assert not {"strimzi.io/kraft", "strimzi.io/node-pools"} & set(annotations)


def test_every_tidings_pod_runs_as_its_own_service_account(docs: list[Doc]) -> None:
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        assert pod["serviceAccountName"] in accounts
        assert pod["automountServiceAccountToken"] is False
