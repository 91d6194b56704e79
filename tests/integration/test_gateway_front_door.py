"""The front door against a real broker: JWT, session ownership across replicas, rate limits,
and a broker that goes away and comes back."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tidings.cli.infra import InfraError, free_port, tansu_command, wait_for_port
from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SECRET = "test-secret-that-is-long-enough-for-hs256"
AUDIENCE = "tidings-test"
ISSUER = "https://issuer.test"


def token(sub: str, *, audience: str = AUDIENCE, expires_in: float = 300) -> str:
    claims: dict[str, Any] = {
        "sub": sub,
        "aud": audience,
        "iss": ISSUER,
        "exp": int(time.time() + expires_in),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(sub: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


@pytest.fixture
async def jwt_replicas(
    kafka_settings: KafkaSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka_settings,
        memory={"url": ""},
        auth="jwt",
        jwt_secret=SECRET,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_leeway_s=0,
        ownership_wait_s=3,
    )
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            service = await stack.enter_async_context(GatewayService(settings))
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10)
            stack.push_async_callback(client.aclose)
            clients.append(client)
        yield clients[0], clients[1]


async def test_bad_tokens_get_401_and_other_subjects_get_404_on_any_replica(
    jwt_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = jwt_replicas
    body = {"message": "my order?"}

    missing = await a.post("/chat", json=body)
    expired = await a.post("/chat", json=body, headers=bearer("alice", expires_in=-60))
    wrong_audience = await a.post("/chat", json=body, headers=bearer("alice", audience="other"))
    forged = await a.post(
        "/chat",
        json=body,
        headers={"Authorization": "Bearer " + jwt.encode({"sub": "alice"}, "x" * 40)},
    )
    for response in (missing, expired, wrong_audience, forged):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await a.get("/v1/models")).status_code == 401

    accepted = await a.post("/chat", json=body, headers=bearer("alice"))
    assert accepted.status_code == 202
    session_id, message_id = accepted.json()["session_id"], accepted.json()["message_id"]
    params = {"session_id": session_id, "message_id": message_id}

    # Replica B learns the owner from user_messages, so the check holds there too.
    for client in (a, b):
        stolen = await client.get("/stream", params=params, headers=bearer("mallory"))
        history = await client.get(f"/sessions/{session_id}/messages", headers=bearer("mallory"))
        hijack = await client.post(
            "/chat", json={**body, "session_id": session_id}, headers=bearer("mallory")
        )
        cancel = await client.post(
            f"/chat/{message_id}/cancel", json={"session_id": session_id}, headers=bearer("mallory")
        )
        for response in (stolen, history, hijack, cancel):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "session_not_found"

    own_cancel = await b.post(
        f"/chat/{message_id}/cancel", json={"session_id": session_id}, headers=bearer("alice")
    )
    assert own_cancel.status_code == 202
    async with b.stream(
        "GET", "/stream", params={"session_id": session_id}, headers=bearer("alice")
    ) as own:
        assert own.status_code == 200


async def test_too_many_messages_get_429_with_retry_after(kafka_settings: KafkaSettings) -> None:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, kafka=kafka_settings, rate_per_s=0.5, rate_burst=3
    )
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client,
    ):
        statuses = [
            (await client.post("/chat", json={"message": f"spam {i}"})).status_code
            for i in range(5)
        ]
        limited = await client.post("/chat", json={"message": "more"})

    assert statuses[:3] == [202, 202, 202]
    assert statuses[3:] == [429, 429]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1


class Broker:
    """A Tansu of the test's own on a fixed port, which the test stops and starts again."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.argv = tansu_command(self.port)
        self._log = log_path.open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout_s=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self._log.close()


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Broker]:
    try:
        broker = Broker(tmp_path / "tansu.log")
    except InfraError as exc:
        pytest.skip(f"needs the Tansu broker binary: {exc}")
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


async def test_broker_outage_503_fast_streams_told_then_recovery_without_restart(
    restartable_broker: Broker,
) -> None:
    kafka = KafkaSettings(
        broker="tansu",  # a Tansu of the test's own (broker_compat on)
        bootstrap_servers=restartable_broker.bootstrap,
        topic_partitions=2,
        request_timeout_ms=2000,
    )
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka,
        memory={"url": ""},
        broker_check_s=0.3,
        unavailable_after_s=1.5,
        ready_cache_s=0,
        sse_ping_s=0.5,
    )
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client,
    ):
        accepted = (await client.post("/chat", json={"message": "hi"})).json()
        async with client.stream("GET", accepted["stream_url"]) as stream:
            restartable_broker.stop()
            lines = []
            async with asyncio.timeout(15):
                async for line in stream.aiter_lines():
                    lines.append(line)
        assert any(line.startswith(": ping") for line in lines), lines
        assert "event: error" in lines
        data = next(line for line in lines if line.startswith("data: "))
        assert '"reason":"unavailable"' in data

        started = time.monotonic()
        refused = await client.post("/chat", json={"message": "anyone there?"})
        took = time.monotonic() - started
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "broker_unavailable"
        assert int(refused.headers["retry-after"]) >= 1
        assert took < 2.0
        assert (await client.get("/ready")).status_code == 503

        restartable_broker.start()
        async with asyncio.timeout(30):
            while True:
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
        back = await client.post("/chat", json={"message": "back?"})
        assert back.status_code == 202
        assert service.watch is not None and service.watch.up
