"""FastAPI's own OpenTelemetry instrumentation is off unless GATEWAY_OTEL_TELEMETRY asks for it:
off, no request consults the OpenTelemetry providers (which costs the busiest endpoint)."""

from __future__ import annotations

import httpx
import pytest
from gateway_fakes import FakePublisher
from opentelemetry import trace

from tidings.gateway.app import create_app
from tidings.gateway.hub import FanoutHub
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.settings import GatewaySettings


async def _always() -> bool:
    return True


async def provider_lookups(settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often serving three POST /chat asked OpenTelemetry for its tracer provider."""
    calls = 0
    real = trace.get_tracer_provider

    def counting() -> trace.TracerProvider:
        nonlocal calls
        calls += 1
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=10, max_sessions=10, max_age_s=60), max_pending=10
    )
    readiness = Readiness(
        producer_up=lambda: True, fanout_ready=lambda: True, broker_probe=_always, cache_s=60
    )
    app = create_app(settings, publisher=FakePublisher(), hub=hub, readiness=readiness)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for _ in range(3):
            response = await client.post("/chat", json={"message": "Where is my order?"})
            assert response.status_code == 202
    return calls


async def test_fastapi_telemetry_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await provider_lookups(GatewaySettings(), monkeypatch) == 0


async def test_fastapi_telemetry_can_be_turned_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_OTEL_TELEMETRY", "true")
    assert await provider_lookups(GatewaySettings(), monkeypatch) >= 3
