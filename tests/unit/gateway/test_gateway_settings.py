"""Operators configure the gateway with GATEWAY_* and the shared KAFKA_* variables."""

from __future__ import annotations

import pytest

from tidings.gateway.settings import GatewaySettings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    monkeypatch.setenv("GATEWAY_MAX_MESSAGE_BYTES", "2048")
    monkeypatch.setenv("GATEWAY_SSE_PING_S", "5")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging-")

    settings = GatewaySettings()

    assert settings.port == 9100
    assert settings.max_message_bytes == 2048
    assert settings.sse_ping_s == 5
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.kafka.user_messages_topic == "staging-user_messages"


def test_defaults_match_the_documented_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_MAX_MESSAGE_BYTES"):
        monkeypatch.delenv(name, raising=False)

    settings = GatewaySettings()

    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert settings.max_message_bytes == 8192
    assert settings.sse_ping_s == 15


def test_nonsense_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "70000")

    with pytest.raises(ValueError, match="port"):
        GatewaySettings()


def test_front_door_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AUTH", "jwt")
    monkeypatch.setenv("GATEWAY_JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json")
    monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", "tidings")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://shop.example"]')
    monkeypatch.setenv("GATEWAY_RATE_PER_S", "0.5")
    monkeypatch.setenv("MEMORY_URL", "http://memory:8001")

    settings = GatewaySettings()

    assert settings.auth == "jwt"
    assert settings.jwt_audience == "tidings"
    assert settings.cors_origins == ["https://shop.example"]
    assert settings.rate_per_s == 0.5
    assert settings.memory.url == "http://memory:8001"
    assert settings.publish_timeout_s < 2  # a broker outage is a 503 within 2 s


def test_an_unknown_auth_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AUTH", "basic")

    with pytest.raises(ValueError, match="auth"):
        GatewaySettings()
