"""Apache Kafka and a Qdrant server in containers (testcontainers), for machines with Docker.

The images are the ones compose.yaml runs, so the containers are what `docker compose up`
starts. Without a Docker engine every fixture built on these skips with the reason; nothing
is downloaded at run time beyond the images.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tidings.cli.infra import free_port

COMPOSE = Path(__file__).resolve().parents[1] / "compose.yaml"


def compose_image(service: str) -> str:
    """The image compose.yaml gives `service`."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return str(compose["services"][service]["image"])


def docker_unavailable() -> str | None:
    """Why no container can run here, or None when a Docker engine answers its ping.

    Asked over plain HTTP (the engine's `/_ping`), not with the docker SDK, whose failed
    connection leaves a socket for the garbage collector to close.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            socket_path = host.removeprefix("unix://")
            if not Path(socket_path).exists():
                return f"no Docker engine socket at {socket_path}"
            transport = httpx.HTTPTransport(uds=socket_path)
            with httpx.Client(transport=transport, timeout=5) as client:
                answer = client.get("http://docker/_ping")
        else:
            url = host.replace("tcp://", "http://", 1)
            with httpx.Client(timeout=5) as client:
                answer = client.get(f"{url}/_ping")
    except httpx.HTTPError as exc:
        return f"the Docker engine at {host} does not answer ({type(exc).__name__})"
    if answer.status_code != 200:
        return f"the Docker engine at {host} answered HTTP {answer.status_code}"
    return None


def _require_docker() -> None:
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"needs a Docker engine for testcontainers: {reason}")


@contextmanager
def kafka_container() -> Iterator[str]:
    """compose's Apache Kafka image as a single KRaft node; yields its bootstrap address."""
    _require_docker()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container = (
        DockerContainer(compose_image("kafka"))
        .with_bind_ports(9092, port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        )
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"


@contextmanager
def qdrant_container() -> Iterator[str]:
    """compose's Qdrant server image; yields its REST URL."""
    _require_docker()
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(image=compose_image("qdrant")) as qdrant:
        yield f"http://{qdrant.rest_host_address}"
