"""k8s/: every overlay renders and validates, and says what the services really need.

Every overlay is rendered by `kubectl kustomize` itself. Built-in kinds are validated with
kubernetes-validate (Kubernetes schemas, strict: no unknown fields); Strimzi, KEDA,
Prometheus-operator and Istio resources against their own CRDs, vendored in crds/ from the
releases docs/deployment.md names (strict as well). Then the manifests are checked against
the code: ports, probes, settings, topics, partitions, and the grace period of the responder.
"""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
from deploy_crds import crd_schemas, crd_validator
from deploy_kustomize import Doc, render
from deploy_settings import service_env_vars, settings_classes
from deploy_targets import K8S, TARGETS, selects
from deploy_targets import config as _config
from deploy_targets import one as _one

from tidings.common.kafka import all_topics
from tidings.common.settings import KafkaSettings, LLMBackend

# The oldest Kubernetes the manifests promise to work on (docs/deployment.md).
K8S_VERSION = "1.31.0"
SERVICES = {"gateway": "GATEWAY_PORT", "responder": "RESPONDER_PORT", "memory": "MEMORY_PORT"}
# Services that serve /metrics on a port of their own, away from their API (named `metrics`).
METRICS_PORTS = {"memory": "MEMORY_METRICS_PORT"}

# Settings deliberately absent from the ConfigMap's data. Each is optional with no default
# (an empty string would not mean "unset") and must appear, commented, in config.yaml or
# secret.yaml so an operator finds it; the test checks that it does.
OPTIONAL_SETTINGS = {
    "GATEWAY_JWT_JWKS_URL": "only with GATEWAY_AUTH=jwt and an identity provider",
    "GATEWAY_JWT_AUDIENCE": "only with GATEWAY_AUTH=jwt",
    "GATEWAY_JWT_ISSUER": "only with GATEWAY_AUTH=jwt",
    "LLM_FALLBACK_BACKEND": "a second LLM backend is a per-deployment choice",
    "VCF_MODEL_ENDPOINT": "only with LLM_BACKEND=vcf_private_ai",
    "VCF_MODEL_NAME": "only with LLM_BACKEND=vcf_private_ai",
    "LLAMACPP_MODEL_PATH": "in-process model file, not used by the Kubernetes deployment",
    "LLAMACPP_THREADS": "unset = llama.cpp picks from the CPU count",
    "RESPONDER_MAX_IN_FLIGHT": "unset = only RESPONDER_MAX_CONCURRENCY caps answers",
    "RESPONDER_FAQ_PATH": "unset = the packaged bookstore FAQ; set it when mounting your own",
    "RESPONDER_FALLBACK_TEXT": "unset = the FAQ file's fallback text",
    "ORDERS_API_URL": "unset = STORE_API_URL (orders and catalogue in one system)",
    "STORE_PUBLIC_URL": "unset = the store's own address",
    "STORE_API_TOKEN": "created with the Secret out of band: no default credential",
    # Secrets (SecretStr) other than OPENAI_API_KEY: only set when used (secret.yaml).
    "QDRANT_API_KEY": "required in the Secret (no default key); qdrant.yaml reads it too",
    "GATEWAY_JWT_SECRET": "only with GATEWAY_AUTH=jwt and HS256 tokens",
    "VCF_API_TOKEN": "unset = the pod's service-account token (VCF_TOKEN_PATH)",
    "MEMORY_API_TOKEN": "created with the Secret out of band: no default credential",
    # Unset = derived from the container's memory limit (tidings.gateway.capacity).
    "GATEWAY_MEMORY_LIMIT_BYTES": "unset = the cgroup memory limit",
    "GATEWAY_MAX_OPEN_STREAMS": "unset = half the memory limit / 96 KiB",
    "GATEWAY_REPLAY_MAX_TOTAL_BYTES": "unset = an eighth of the memory limit",
}


def _container(deployment: Doc, name: str | None = None) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if name is None or c["name"] == name)


def _topic(docs: list[Doc], topic_name: str) -> Doc:
    return next(
        d for d in docs if d["kind"] == "KafkaTopic" and d["spec"]["topicName"] == topic_name
    )


# --- rendering and schemas -------------------------------------------------------------


def test_every_overlay_is_an_overlay_kubectl_renders() -> None:
    overlays = {p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml")}
    assert overlays == {path for name, path in TARGETS.items() if name != "base"}


def test_every_resource_validates_against_its_schema(docs: list[Doc]) -> None:
    schemas = crd_schemas()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in schemas:
            crd_validator(*key).validate(doc)
            # A CRD leaves metadata to the API server, which checks it as ObjectMeta.
            meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
            kubernetes_validate.validate(meta, K8S_VERSION, strict=True)
        else:
            # Raises SchemaNotFoundError for a kind Kubernetes does not have (a CRD whose
            # schema is not vendored fails here too).
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_namespaced_resource_lands_in_the_tidings_namespace(docs: list[Doc]) -> None:
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "tidings", doc["metadata"]["name"]


def test_crd_schemas_reject_unknown_spec_keys_and_missing_fields() -> None:
    base = render(TARGETS["base"])
    scaled = _one(base, "ScaledObject", "responder")
    keda = crd_validator("keda.sh/v1alpha1", "ScaledObject")
    keda.validate(scaled)
    bad = copy.deepcopy(scaled)
    bad["spec"]["maxReplicas"] = 6  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        keda.validate(bad)
    bad = copy.deepcopy(scaled)
    del bad["spec"]["scaleTargetRef"]["name"]
    with pytest.raises(jsonschema.ValidationError):
        keda.validate(bad)
    topic = copy.deepcopy(_one(base, "KafkaTopic", "user-messages"))
    topic["spec"]["partitionCount"] = 6
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("kafka.strimzi.io/v1", "KafkaTopic").validate(topic)
    kafka = copy.deepcopy(_one(base, "Kafka", "tidings"))
    kafka["spec"]["kafka"]["replicas"] = 3  # moved to KafkaNodePool; gone from the v1 API
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("kafka.strimzi.io/v1", "Kafka").validate(kafka)
    monitor = copy.deepcopy(_one(base, "ServiceMonitor", "tidings"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("monitoring.coreos.com/v1", "ServiceMonitor").validate(monitor)
    peer = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default"},
        "spec": {"mtls": {"mode": "STRICTEST"}},
    }
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("security.istio.io/v1", "PeerAuthentication").validate(peer)


# --- the three services --------------------------------------------------------------------


def test_services_run_hardened_with_probes_on_their_ports(docs: list[Doc]) -> None:
    config = _config(docs)
    for name, port_var in SERVICES.items():
        deployment = _one(docs, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment, name)
        assert container["image"].split("/")[-1].startswith(f"{name}:") or container[
            "image"
        ].startswith(f"tidings-{name}:")
        assert container["args"] == [name]  # the image's entrypoint is `tidings`
        port = int(config[port_var])
        ports = [{"name": "http", "containerPort": port}]
        if name in METRICS_PORTS:
            ports.append({"name": "metrics", "containerPort": int(config[METRICS_PORTS[name]])})
        assert container["ports"] == ports
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert set(container["resources"]) == {"requests", "limits"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert {e.get("configMapRef", {}).get("name") for e in container["envFrom"]} >= {
            "tidings-config"
        }
        service = _one(docs, "Service", name)
        assert service["spec"]["ports"][0]["port"] == port
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [p["name"] for p in ports]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        pdb = _one(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_responder_grace_period_outlasts_its_shutdown_grace(docs: list[Doc]) -> None:
    config = _config(docs)
    responder = _one(docs, "Deployment", "responder")
    pod = responder["spec"]["template"]["spec"]
    pre_stop = _container(responder)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = float(config["RESPONDER_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > grace + float(pre_stop[1])
    memory = _one(docs, "Deployment", "memory")["spec"]["template"]["spec"]
    assert memory["terminationGracePeriodSeconds"] > float(config["MEMORY_SHUTDOWN_GRACE_S"])


def test_config_map_parses_with_every_settings_class(
    docs: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(docs)
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    for cls in settings_classes():
        cls()  # raises on a value the service would refuse at start
    assert config["LLM_BACKEND"] in {b.value for b in LLMBackend}


def test_config_map_covers_every_setting_the_services_read(docs: list[Doc]) -> None:
    config = _config(docs)
    secret = _one(docs, "Secret", "tidings-secrets")
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    text = (K8S / "base" / "config.yaml").read_text() + (K8S / "base" / "secret.yaml").read_text()
    env = service_env_vars()
    missing = []
    for var in env.values():
        names = set(var.names)
        if var.secret:
            assert not names & set(config), f"{var.names} is a secret: Secret, not ConfigMap"
            if names & secret_keys:
                continue
        elif names & set(config):
            continue
        documented = [n for n in names if n in OPTIONAL_SETTINGS and n in text]
        if not documented:
            missing.append(f"{'/'.join(var.names)} ({var.owner})")
    assert not missing, "settings missing from k8s/base/config.yaml: " + ", ".join(missing)
    known = {n for var in env.values() for n in var.names}
    assert set(OPTIONAL_SETTINGS) <= known, set(OPTIONAL_SETTINGS) - known  # no stale entries
    unknown = set(config) - known
    assert not unknown, f"ConfigMap keys no service reads: {unknown}"


# --- Kafka, topics, KEDA ----------------------------------------------------------------


def test_topics_exist_for_every_topic_the_services_use(docs: list[Doc]) -> None:
    config = _config(docs)
    settings = KafkaSettings(topic_prefix=config["KAFKA_TOPIC_PREFIX"])
    names = {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
    assert names == set(all_topics(settings))
    partitions = int(config["KAFKA_TOPIC_PARTITIONS"])
    replication = int(config["KAFKA_REPLICATION_FACTOR"])
    pool = _one(docs, "KafkaNodePool", "dual-role")["spec"]
    for name in names:
        spec = _topic(docs, name)["spec"]
        assert spec["partitions"] == partitions, name
        assert spec["replicas"] == replication <= pool["replicas"], name
    kafka = _one(docs, "Kafka", "tidings")["spec"]["kafka"]
    listener = next(x for x in kafka["listeners"] if x["port"] == 9092)
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "tidings-kafka-bootstrap:9092"
    assert listener["tls"] is False
    assert "broker" in pool["roles"] and "controller" in pool["roles"]  # KRaft
    assert config["KAFKA_ENABLE_IDEMPOTENCE"] == "true"


def test_keda_scales_the_responder_on_its_group_lag_up_to_the_partitions(
    target: str, docs: list[Doc]
) -> None:
    config = _config(docs)
    scaled = _one(docs, "ScaledObject", "responder")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "responder"
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == config["RESPONDER_GROUP_ID"]
    assert (
        meta["topic"]
        == KafkaSettings(topic_prefix=config["KAFKA_TOPIC_PREFIX"]).user_messages_topic
    )
    assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    partitions = _topic(docs, meta["topic"])["spec"]["partitions"]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    if target != "dev":  # dev runs one of everything
        assert scaled["maxReplicaCount"] == partitions
    # KEDA would fight any other autoscaler of the responder.
    assert not [
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler"
        and d["spec"]["scaleTargetRef"]["name"] == "responder"
    ]


def test_gateway_scales_on_cpu(docs: list[Doc]) -> None:
    hpa = _one(docs, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"


# --- edges: ingress, network policies ---------------------------------------------------


def test_ingress_streams_sse_without_buffering(docs: list[Doc]) -> None:
    ingress = _one(docs, "Ingress", "tidings")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    # Longer than the gateway's heartbeat, or the proxy cuts idle streams.
    sse_ping = float(_config(docs)["GATEWAY_SSE_PING_S"])
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 10 * sse_ping
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"name": "http"}}


def _egress_ports(policy: Doc) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_network_policies_allow_only_what_each_service_needs(docs: list[Doc]) -> None:
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    for name in SERVICES:
        assert policies[name]["spec"]["policyTypes"] == ["Ingress", "Egress"]
        selector = policies[name]["spec"]["podSelector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": name}
    dns, kafka = 53, 9092
    assert _egress_ports(policies["gateway"]) == {dns, kafka, 8001}
    assert _egress_ports(policies["responder"]) == {dns, kafka, 8001, 11434, 8000, 443}
    assert _egress_ports(policies["memory"]) == {dns, kafka, 6333, 6334}
    gateway_from = policies["gateway"]["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in gateway_from
    memory_from = policies["memory"]["spec"]["ingress"][0]["from"]
    assert {
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for p in memory_from
    } >= {"gateway", "responder"}
    qdrant_from = policies["qdrant"]["spec"]["ingress"][0]["from"]
    assert qdrant_from == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "memory"}}}]
    llm_from = policies["llm"]["spec"]["ingress"][0]["from"]
    assert llm_from == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "responder"}}}]


def _ingress_peers_by_port(policy: Doc) -> dict[int, list[dict[str, object]]]:
    """port -> every peer an ingress rule admits to it (a rule must name both)."""
    peers: dict[int, list[dict[str, object]]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), rule  # no rule admits all peers/ports
        for port in rule["ports"]:
            peers.setdefault(port["port"], []).extend(rule["from"])
    return peers


def test_monitoring_reaches_memory_only_on_its_metrics_port(docs: list[Doc]) -> None:
    config = _config(docs)
    api_port, metrics_port = int(config["MEMORY_PORT"]), int(config["MEMORY_METRICS_PORT"])
    policies = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and "Ingress" in d["spec"]["policyTypes"]
        and d["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "memory"
    ]
    (policy,) = policies  # default-deny (empty selector) admits nothing
    peers = _ingress_peers_by_port(policy)
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert set(peers) == {api_port, metrics_port}
    assert peers[metrics_port] == [monitoring]
    assert peers[api_port] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": caller}}}
        for caller in ("gateway", "responder")
    ]


# --- LLM servers per overlay ----------------------------------------------------------------


def _llm_pods(docs: list[Doc]) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "llm"
    ]


def test_dev_runs_ollama_with_the_model_pulled_by_an_init_container() -> None:
    docs = render(TARGETS["dev"])
    config = _config(docs)
    assert config["LLM_BACKEND"] == "ollama"
    (ollama,) = _llm_pods(docs)
    assert ollama["metadata"]["name"] == "ollama"
    service = _one(docs, "Service", "ollama")
    assert config["OLLAMA_URL"] == f"http://ollama:{service['spec']['ports'][0]['port']}"
    (init,) = ollama["spec"]["template"]["spec"]["initContainers"]
    assert 'ollama pull "$OLLAMA_MODEL"' in init["command"][-1]
    model_env = next(e for e in init["env"] if e["name"] == "OLLAMA_MODEL")
    assert model_env["valueFrom"]["configMapKeyRef"] == {
        "name": "tidings-config",
        "key": "OLLAMA_MODEL",
    }
    volumes = ollama["spec"]["template"]["spec"]["volumes"]
    claim = next(v for v in volumes if "persistentVolumeClaim" in v)["persistentVolumeClaim"]
    _one(docs, "PersistentVolumeClaim", claim["claimName"])
    for name in ("gateway", "responder", "memory"):
        assert _one(docs, "Deployment", name)["spec"]["replicas"] == 1


def test_prod_runs_vllm_on_a_gpu_behind_the_openai_backend() -> None:
    docs = render(TARGETS["prod-vllm"])
    config = _config(docs)
    assert config["LLM_BACKEND"] == "openai"
    (vllm,) = _llm_pods(docs)
    pod = vllm["spec"]["template"]["spec"]
    container = _container(vllm)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] and pod["tolerations"]
    service = _one(docs, "Service", "vllm")
    assert config["OPENAI_BASE_URL"] == f"http://vllm:{service['spec']['ports'][0]['port']}/v1"
    assert f"--served-model-name={config['OPENAI_MODEL']}" in container["args"]
    assert int(config["KAFKA_TOPIC_PARTITIONS"]) > int(
        _config(render(TARGETS["dev"]))["KAFKA_TOPIC_PARTITIONS"]
    )
    assert _one(docs, "Deployment", "gateway")["spec"]["replicas"] > 1


# --- monitoring ---------------------------------------------------------------------------


def _scraped_ports(docs: list[Doc], name: str) -> set[int]:
    """The container ports the ServiceMonitors scrape on the service `name`'s pods."""
    service = _one(docs, "Service", name)
    container = _container(_one(docs, "Deployment", name), name)
    numbers = {p["name"]: p["containerPort"] for p in container["ports"]}
    targets = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    scraped = set()
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        if selects(monitor["spec"]["selector"], service["metadata"]["labels"]):
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["path"] == "/metrics"
                scraped.add(numbers[targets[endpoint["port"]]])
    return scraped


def test_service_monitors_scrape_each_service_on_its_metrics_port(docs: list[Doc]) -> None:
    config = _config(docs)
    for name, port_var in SERVICES.items():
        metrics_port = int(config[METRICS_PORTS.get(name, port_var)])
        assert _scraped_ports(docs, name) == {metrics_port}, name
    # memory's API port (everyone's turns, behind MEMORY_API_TOKEN) is not scraped.
    assert int(config["MEMORY_METRICS_PORT"]) != int(config["MEMORY_PORT"])
    dashboard = _one(docs, "ConfigMap", "tidings-grafana-dashboard")
    assert dashboard["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert '"uid": "tidings"' in dashboard["data"]["tidings.json"]
