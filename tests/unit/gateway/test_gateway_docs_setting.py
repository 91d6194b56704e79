"""The interactive API docs are off unless GATEWAY_DOCS turns them on (issue 18, item 5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tidings.gateway.app import create_app
from tidings.gateway.settings import GatewaySettings


async def _status(settings: GatewaySettings, path: str) -> int:
    # Only the routing is under test: nothing here publishes, streams or checks readiness.
    none: Any = None
    app = create_app(settings, publisher=none, hub=none, readiness=none)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        return (await client.get(path)).status_code


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_are_off_by_default_and_on_when_enabled(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_DOCS", raising=False)
    assert GatewaySettings().docs is False
    assert await _status(GatewaySettings(), path) == 404
    monkeypatch.setenv("GATEWAY_DOCS", "true")
    assert await _status(GatewaySettings(), path) == 200


async def test_the_schema_stays_available() -> None:
    assert await _status(GatewaySettings(), "/openapi.json") == 200
