"""KAFKA_BROKER: Apache Kafka gets the production defaults and none of Tansu's workarounds."""

from __future__ import annotations

import pytest

from tidings.common.broker_compat import BrokerCompat
from tidings.common.settings import BrokerKind, KafkaSettings


def test_apache_kafka_is_the_default_with_production_client_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BROKER", raising=False)
    settings = KafkaSettings()
    assert settings.broker is BrokerKind.KAFKA
    assert (settings.enable_idempotence, settings.fetch_max_wait_ms) == (True, 500)
    compat = BrokerCompat.of(settings)
    assert not (
        compat.pace_fetches
        or compat.leave_group_at_generation_zero
        or compat.repair_auto_created_topics
        or compat.verify_log_ends
    )


def test_tansu_turns_on_its_workarounds_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKER", "tansu")
    settings = KafkaSettings()
    assert (settings.enable_idempotence, settings.fetch_max_wait_ms) == (False, 10)
    assert settings.fetch_busy_wait_ms == 3
    compat = BrokerCompat.of(settings)
    assert compat.pace_fetches and compat.leave_group_at_generation_zero
    assert compat.repair_auto_created_topics and compat.verify_log_ends


def test_what_the_user_sets_wins_over_the_brokers_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BROKER", "tansu")
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "50")
    assert KafkaSettings().fetch_max_wait_ms == 50
    assert KafkaSettings(broker="tansu", enable_idempotence=True).enable_idempotence


def test_an_unknown_broker_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="broker"):
        KafkaSettings(broker="redpanda")
