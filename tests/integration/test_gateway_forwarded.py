"""Behind an ingress, rate limits apply per user, not to the proxy as one client."""

from __future__ import annotations

import httpx
import pytest

from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


async def _statuses(port: int, forwarded_for: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return [
            (
                await client.post(
                    "/chat", json={"message": "hello"}, headers={"X-Forwarded-For": address}
                )
            ).status_code
            for address in forwarded_for
        ]


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        # A trusted proxy: each forwarded address has its own bucket (burst 1).
        ("*", [202, 429, 202]),
        # Not trusted (the default): the header is ignored, so it cannot dodge the limit.
        ("10.9.9.9", [202, 429, 429]),
    ],
)
async def test_rate_limit_follows_the_forwarded_client_only_from_trusted_proxies(
    kafka_settings: KafkaSettings, trusted: str, expected: list[int]
) -> None:
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka_settings,
        rate_per_s=0.01,
        rate_burst=1,
        forwarded_allow_ips=trusted,
    )
    async with GatewayService(settings) as gateway:
        assert await _statuses(gateway.port, ["203.0.113.1", "203.0.113.1", "203.0.113.2"]) == (
            expected
        )
