"""`tidings dev` starts only what the environment does not already provide."""

from __future__ import annotations

import socket

from tidings.cli.dev import plan, ports_in_use
from tidings.cli.infra import LLAMA_MODEL_ALIAS


def test_bare_environment_starts_broker_and_bundled_llm() -> None:
    dev = plan({}, broker_port=9092, llm_port=8080)
    assert dev.broker_port == 9092
    assert dev.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert dev.llm_port == 8080
    assert dev.env["LLM_BACKEND"] == "openai"
    assert dev.env["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    assert dev.env["OPENAI_MODEL"] == LLAMA_MODEL_ALIAS
    assert dev.services == ["store", "memory", "responder", "gateway"]
    # The bundled bookstore backend answers the order and recommendation tools.
    assert dev.env["STORE_API_URL"] == dev.env["ORDERS_API_URL"] == "http://127.0.0.1:8003"


def test_the_store_follows_its_port_and_an_external_store_is_kept() -> None:
    assert plan({"STORE_PORT": "9003"}).env["STORE_API_URL"] == "http://127.0.0.1:9003"
    dev = plan({"STORE_API_URL": "https://shop.example/api-base"})
    assert dev.env["ORDERS_API_URL"] == "https://shop.example/api-base"


def test_external_kafka_is_used_instead_of_tansu() -> None:
    dev = plan({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert dev.broker_port is None
    assert dev.env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_configured_llm_is_used_instead_of_bundled_model() -> None:
    for env in (
        {"LLM_BACKEND": "ollama", "OLLAMA_URL": "http://gpu:11434"},
        {"OLLAMA_URL": "http://gpu:11434"},
        {"OPENAI_BASE_URL": "http://vllm:8000/v1"},
    ):
        dev = plan(env)
        assert dev.llm_port is None, env
        assert dev.env.get("OPENAI_BASE_URL") == env.get("OPENAI_BASE_URL"), env
    assert plan({"OLLAMA_URL": "http://gpu:11434"}).env["LLM_BACKEND"] == "ollama"


def test_taken_port_is_reported_by_name() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        dev = plan({"GATEWAY_PORT": str(port)}, broker_port=port + 1 if port < 65535 else 1)
        assert ("gateway", port) in ports_in_use(dev)


def test_apache_kafka_is_started_when_java_is_here() -> None:
    dev = plan({}, broker_port=9092, kafka_unavailable=None)
    assert (dev.broker, dev.controller_port, dev.broker_note) == ("kafka", 9093, None)
    assert dev.env["KAFKA_BROKER"] == "kafka"


def test_tansu_is_the_fallback_and_says_why() -> None:
    dev = plan({}, broker_port=9092, kafka_unavailable="no `java` on PATH")
    assert (dev.broker, dev.controller_port) == ("tansu", None)
    assert dev.broker_note == "no `java` on PATH"
    assert dev.env["KAFKA_BROKER"] == "tansu"  # the services turn on Tansu's workarounds
    chosen = plan({"TIDINGS_DEV_BROKER": "tansu"}, broker_port=9092)
    assert (chosen.broker, chosen.broker_note) == ("tansu", "TIDINGS_DEV_BROKER=tansu")


def test_an_external_broker_keeps_its_kind() -> None:
    dev = plan({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "KAFKA_BROKER": "tansu"})
    assert dev.broker_port is None
    assert dev.env["KAFKA_BROKER"] == "tansu"
