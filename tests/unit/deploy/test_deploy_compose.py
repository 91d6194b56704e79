"""compose.yaml, checked without Docker: it parses, its start order is sound, and it names
only images, ports and variables the services really have."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import yaml
from deploy_settings import ROOT, service_env_vars

from tidings.common.settings import LLMBackend
from tidings.gateway.settings import GatewaySettings
from tidings.memory.settings import MemorySettings
from tidings.responder.settings import ResponderSettings
from tidings.store.settings import StoreSettings

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
# The three images and the port each listens on by default.
TIDINGS = {
    "gateway": ("GATEWAY_PORT", GatewaySettings.model_fields["port"].default),
    "responder": ("RESPONDER_PORT", ResponderSettings.model_fields["port"].default),
    "memory": ("MEMORY_PORT", MemorySettings.model_fields["port"].default),
    "store": ("STORE_PORT", StoreSettings.model_fields["port"].default),
}
ONE_SHOT = {"topics", "ollama-pull"}


def _tidings_services() -> dict[str, str]:
    """compose service -> which Tidings image it runs."""
    result = {}
    for name, spec in SERVICES.items():
        image = spec.get("image", "")
        if image.startswith("tidings-"):
            result[name] = image.split(":")[0].removeprefix("tidings-")
    return result


def test_tidings_services_use_the_images_built_from_docker() -> None:
    services = _tidings_services()
    assert set(services.values()) == set(TIDINGS)
    for name, image in services.items():
        build = SERVICES[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"docker/{image}.Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()


def test_third_party_images_are_pinned() -> None:
    for name, spec in SERVICES.items():
        image = spec["image"]
        if image.startswith("tidings-"):
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image}"


def test_environment_names_only_settings_the_services_read() -> None:
    known = {n for var in service_env_vars().values() for n in var.names}
    for name in _tidings_services():
        env = SERVICES[name].get("environment", {})
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no service reads: {unknown}"
        if name == "store":
            continue  # the store has no Kafka
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"  # real Kafka


def test_ports_and_healthchecks_match_each_service() -> None:
    for name, image in _tidings_services().items():
        spec = SERVICES[name]
        if name in ONE_SHOT:
            assert spec["restart"] == "no"
            continue
        port_var, default = TIDINGS[image]
        port = int(spec["environment"].get(port_var, default))
        if name == "memory":
            # It holds everyone's conversations: only the other containers reach it.
            assert "ports" not in spec
        else:
            (mapping,) = spec["ports"]
            assert mapping == f"{port}:{port}" or mapping.endswith(f":{port}:{port}"), mapping
            host = mapping.removesuffix(f"{port}:{port}").removesuffix(":")
            # Safe by default: this machine only (the gateway unless TIDINGS_BIND says so);
            # the store's book pages are linked from answers (STORE_PUBLIC_URL).
            if name != "store":
                assert host in {"127.0.0.1", "${TIDINGS_BIND:-127.0.0.1}"}, mapping
        assert spec["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/opt/tidings/healthcheck.py",
            port_var,
            str(port),
        ]
        assert spec["read_only"] is True and "/tmp" in spec["tmpfs"]
        assert spec["cap_drop"] == ["ALL"]


def test_start_order_follows_health() -> None:
    for name, spec in SERVICES.items():
        if name not in ONE_SHOT:
            assert "healthcheck" in spec, f"{name} has no healthcheck"
        for dependency, rule in spec.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            condition = rule["condition"]
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, dependency)
            else:
                assert condition == "service_healthy", (name, dependency)
                assert "healthcheck" in SERVICES[dependency]
            # A service in a profile may not be needed by one outside it.
            assert set(SERVICES[dependency].get("profiles", [])) <= set(spec.get("profiles", []))
    # The chain the README's curl session needs.
    assert "topics" in SERVICES["gateway"]["depends_on"]
    assert "ollama-pull" in SERVICES["responder"]["depends_on"]
    assert "qdrant" in SERVICES["memory"]["depends_on"]


def test_responder_uses_ollama_with_the_pulled_model() -> None:
    env = SERVICES["responder"]["environment"]
    assert env["LLM_BACKEND"] == LLMBackend.OLLAMA.value
    url = urlparse(env["OLLAMA_URL"])
    assert url.hostname == "ollama" and url.port == 11434
    assert SERVICES["ollama-pull"]["command"] == ["pull", env["OLLAMA_MODEL"]]
    assert env["OLLAMA_MODEL"].startswith("${OLLAMA_MODEL:-")  # configurable
    for name in ("responder", "gateway"):
        memory = urlparse(SERVICES[name]["environment"]["MEMORY_URL"])
        assert memory.hostname == "memory" and memory.port == TIDINGS["memory"][1]
    qdrant = urlparse(SERVICES["memory"]["environment"]["QDRANT_URL"])
    assert qdrant.hostname == "qdrant"
    assert SERVICES["topics"]["command"] == ["topics", "create"]


def test_volumes_and_mounted_files_exist() -> None:
    declared = set(COMPOSE["volumes"])
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in declared, f"{name}: {source}"


def _scrape_targets() -> set[str]:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    return {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }


def test_observability_profile_scrapes_all_three_services() -> None:
    observability = {n for n, s in SERVICES.items() if "observability" in s.get("profiles", [])}
    assert observability == {"prometheus", "grafana", "kafka-exporter"}
    targets = _scrape_targets()
    for name, image in _tidings_services().items():
        if name in ONE_SHOT:
            continue
        port_var, default = TIDINGS[image]
        environment = SERVICES[name]["environment"]
        # A service with a metrics port of its own is scraped there (memory), not on its API.
        metrics_var = port_var.replace("_PORT", "_METRICS_PORT")
        port = environment.get(metrics_var, environment.get(port_var, default))
        assert f"{name}:{port}" in targets
    for target in targets:
        assert target.split(":")[0] in SERVICES


def test_prometheus_scrapes_memory_on_its_metrics_port_not_its_data_port() -> None:
    memory = SERVICES["memory"]["environment"]
    api_port = int(memory.get("MEMORY_PORT", TIDINGS["memory"][1]))
    metrics_port = int(memory["MEMORY_METRICS_PORT"])
    assert metrics_port != api_port
    # Other containers (Prometheus) must reach it: MEMORY_METRICS_HOST defaults to MEMORY_HOST.
    assert memory.get("MEMORY_METRICS_HOST", memory["MEMORY_HOST"]) == "0.0.0.0"
    memory_targets = {t for t in _scrape_targets() if t.split(":")[0] == "memory"}
    # The API port needs MEMORY_API_TOKEN and serves no /metrics once the metrics port is set.
    assert memory_targets == {f"memory:{metrics_port}"}


def test_grafana_provisions_the_dashboard() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/tidings.yaml").read_text()
    )["providers"][0]
    path = provider["options"]["path"]
    source = next(src for src, dst in mounts.items() if dst == path)
    assert (ROOT / source / "tidings.json").is_file()
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert urlparse(datasource["url"]).hostname == "prometheus"


def test_compose_alerts_equal_the_kubernetes_rules() -> None:
    compose_rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
    k8s = [
        d
        for d in yaml.safe_load_all((ROOT / "k8s/base/monitoring.yaml").read_text())
        if d and d["kind"] == "PrometheusRule"
    ]
    assert k8s[0]["spec"]["groups"] == compose_rules


def test_responder_stop_grace_outlasts_its_shutdown_grace() -> None:
    grace_field = ResponderSettings.model_fields["grace_s"]
    grace = float(
        SERVICES["responder"]["environment"].get("RESPONDER_GRACE_S", grace_field.default)
    )
    stop = SERVICES["responder"]["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


def test_the_memory_api_needs_the_shared_credential() -> None:
    memory_env = SERVICES["memory"]["environment"]
    token = memory_env["MEMORY_API_TOKEN"]
    # No default credential: compose refuses to start until one is given.
    assert token.startswith("${MEMORY_API_TOKEN:?")
    assert memory_env["MEMORY_HOST"] == "0.0.0.0"
    for client in ("responder", "gateway"):
        assert SERVICES[client]["environment"]["MEMORY_API_TOKEN"] == token


def _required_variable(value: str) -> str | None:
    """`${NAME:?message}` -> NAME: compose refuses to start while it is unset or empty."""
    match = re.fullmatch(r"\$\{([A-Z_]+):\?[^}]+\}", value)
    return match.group(1) if match else None


def test_no_default_passwords_and_no_open_consoles() -> None:
    grafana = SERVICES["grafana"]["environment"]
    assert _required_variable(grafana["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    qdrant_key = SERVICES["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]
    assert _required_variable(qdrant_key) == "QDRANT_API_KEY"
    assert SERVICES["memory"]["environment"]["QDRANT_API_KEY"] == qdrant_key
    # Consoles without their own authentication listen on this machine only.
    for name in ("prometheus", "grafana"):
        for mapping in SERVICES[name]["ports"]:
            assert mapping.startswith("127.0.0.1:"), (name, mapping)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_guides_name_every_secret_compose_requires() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "compose.yaml").read_text()))
    assert {"MEMORY_API_TOKEN", "QDRANT_API_KEY", "GRAFANA_ADMIN_PASSWORD"} <= required
    readme = (ROOT / "README.md").read_text()
    deploying = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    guide = (ROOT / "docs" / "deployment.md").read_text()
    compose_section = guide.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    for text, where in ((deploying, "README.md, Deploying"), (compose_section, "deployment.md")):
        missing = sorted(name for name in required if f"{name}=$(" not in text)
        assert not missing, f"{where} does not show how to set {missing}"
