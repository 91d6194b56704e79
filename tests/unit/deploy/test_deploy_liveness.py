"""Every deployment's broker accepts the responder session timeout it ships with.

The responders run with a 3 s session (a killed one is replaced within 5 s,
tests/bench/bench_takeover.py), below Kafka's default group.min.session.timeout.ms (6 s): a
broker that kept its default would refuse them (INVALID_SESSION_TIMEOUT) and no responder
would ever join.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tidings.cli.apache_kafka import BROKER_SETTINGS
from tidings.cli.dev import plan
from tidings.responder.settings import ResponderSettings

ROOT = Path(__file__).resolve().parents[3]
KAFKA_DEFAULT_MIN_SESSION_MS = 6000


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def test_kubernetes_broker_accepts_the_responder_session() -> None:
    config = next(
        doc for doc in _yaml_documents(ROOT / "k8s/base/config.yaml") if doc["kind"] == "ConfigMap"
    )
    session = int(config["data"]["RESPONDER_SESSION_TIMEOUT_MS"])
    kafka = next(
        doc for doc in _yaml_documents(ROOT / "k8s/base/kafka.yaml") if doc["kind"] == "Kafka"
    )
    minimum = int(
        kafka["spec"]["kafka"]["config"].get(
            "group.min.session.timeout.ms", KAFKA_DEFAULT_MIN_SESSION_MS
        )
    )
    assert minimum <= session <= 4000, (minimum, session)


def test_compose_broker_accepts_the_responder_session() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    session = int(compose["services"]["responder"]["environment"]["RESPONDER_SESSION_TIMEOUT_MS"])
    minimum = int(
        compose["services"]["kafka"]["environment"].get(
            "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", KAFKA_DEFAULT_MIN_SESSION_MS
        )
    )
    assert minimum <= session <= 4000, (minimum, session)


def test_make_runs_broker_accepts_the_responder_session() -> None:
    dev = plan({}, broker_port=9092, kafka_unavailable=None)
    session = int(dev.env["RESPONDER_SESSION_TIMEOUT_MS"])
    assert int(BROKER_SETTINGS["group.min.session.timeout.ms"]) <= session <= 4000
    # A Kafka the user brings keeps the responder's own default, which any Kafka accepts.
    external = plan({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert "RESPONDER_SESSION_TIMEOUT_MS" not in external.env
    assert ResponderSettings().session_timeout_ms >= KAFKA_DEFAULT_MIN_SESSION_MS
