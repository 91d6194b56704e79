"""The local Apache Kafka node: compose's broker settings, on loopback, its log on disk."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tidings.cli import apache_kafka
from tidings.cli.apache_kafka import BROKER_SETTINGS, KafkaNode


def test_node_listens_on_loopback_with_composes_settings(tmp_path: Path) -> None:
    node = KafkaNode(port=19092, controller_port=19093, data_dir=tmp_path / "kafka")
    props = node.properties()
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "log")
    for key, value in BROKER_SETTINGS.items():
        assert props[key] == value
    assert props["auto.create.topics.enable"] == "false"
    assert node.bootstrap == "127.0.0.1:19092"


def test_the_broker_jvm_gets_kafkas_own_performance_options(tmp_path: Path) -> None:
    # As kafka-run-class.sh gives them (compose's apache/kafka image): a 20 ms GC pause
    # target instead of G1's 200 ms default, before the main class.
    node = KafkaNode(port=1, controller_port=2, data_dir=tmp_path)
    command = node._java(tmp_path / "libs", "kafka.Kafka", "server.properties", heap_mb=512)
    assert command.index("-XX:MaxGCPauseMillis=20") < command.index("kafka.Kafka")
    assert {"-XX:+UseG1GC", "-XX:InitiatingHeapOccupancyPercent=35", "-Xmx512m"} <= set(command)
    bare = KafkaNode(port=1, controller_port=2, data_dir=tmp_path, jvm_options=())
    assert "-XX:MaxGCPauseMillis=20" not in bare._java(tmp_path, "kafka.Kafka", heap_mb=512)


def test_extra_settings_override(tmp_path: Path) -> None:
    node = KafkaNode(
        port=1,
        controller_port=2,
        data_dir=tmp_path,
        extra_settings=(("group.min.session.timeout.ms", "2000"),),
    )
    assert node.properties()["group.min.session.timeout.ms"] == "2000"


def test_without_java_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apache_kafka.shutil, "which", lambda name: None)
    assert apache_kafka.unavailable() == "no `java` on PATH (Apache Kafka needs Java 17+)"


def test_cache_dir_follows_tidings_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path))
    assert apache_kafka.cache_dir() == tmp_path / "kafka" / apache_kafka.KAFKA_VERSION
    assert not apache_kafka.is_fetched()


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8... encodes to "-AAA...": the storage tool would take it for an option.
    draws = iter([uuid.UUID(bytes=bytes([0xF8]) + bytes(15)), uuid.UUID(int=1)])
    monkeypatch.setattr(apache_kafka.uuid, "uuid4", lambda: next(draws))
    cluster_id = apache_kafka.new_cluster_id()
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ"
    assert len(cluster_id) == 22
