"""JWT with an identity provider's key set, over real HTTP: each key is used with its own
algorithm only, every bad token is a 401 (never a 500), unknown key ids refresh the set
within a bound, a revoked key stops working, and an over-long subject is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidings.common.runtime import HttpServer
from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass
class Provider:
    """An identity provider's JWKS endpoint that counts its fetches."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: int = 0

    def app(self) -> Starlette:
        async def jwks(_: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": list(self.keys.values())})

        return Starlette(routes=[Route("/jwks.json", jwks)])


def public_jwk(kid: str, key: Any, alg: str) -> dict[str, Any]:
    as_jwk = RSAAlgorithm.to_jwk if alg.startswith(("RS", "PS")) else ECAlgorithm.to_jwk
    jwk: dict[str, Any] = as_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def token(key: Any, alg: str, kid: str, sub: str = "alice") -> str:
    claims = {"sub": sub, "exp": int(time.time() + 300)}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    found = Provider()
    found.keys["rsa-1"] = public_jwk("rsa-1", RSA_KEY, "RS256")
    found.keys["ec-1"] = public_jwk("ec-1", EC_KEY, "ES256")
    server = HttpServer(found.app(), "127.0.0.1", 0, name="jwks")
    await server.start()
    try:
        yield found, f"http://127.0.0.1:{server.port}/jwks.json"
    finally:
        await server.stop()


@pytest.fixture
async def http(
    kafka_settings: KafkaSettings, provider: tuple[Provider, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka_settings,
        memory={"url": ""},
        auth="jwt",
        jwt_jwks_url=provider[1],
        jwt_jwks_cache_s=1.0,
        jwt_jwks_min_refresh_s=0.5,
    )
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client,
    ):
        yield client


async def models(http: httpx.AsyncClient, value: str) -> httpx.Response:
    return await http.get("/v1/models", headers=bearer(value))


async def test_a_token_is_checked_with_its_keys_own_algorithm(http: httpx.AsyncClient) -> None:
    assert (await models(http, token(RSA_KEY, "RS256", "rsa-1"))).status_code == 200
    assert (await models(http, token(EC_KEY, "ES256", "ec-1"))).status_code == 200
    confused = {
        # ES256 named with the RSA key's id: was an unauthenticated 500.
        "es256 with an rsa kid": token(EC_KEY, "ES256", "rsa-1"),
        # PS256 signed with the RSA key: was accepted by an RS256 key.
        "ps256 with an rs256 key": token(RSA_KEY, "PS256", "rsa-1"),
        "rs256 with an ec kid": token(RSA_KEY, "RS256", "ec-1"),
        "hs256 with no secret": jwt.encode({"sub": "alice"}, "x" * 40, algorithm="HS256"),
        "not a token": "a.b.c",
    }
    for case, value in confused.items():
        response = await models(http, value)
        assert response.status_code == 401, (case, response.text)
        assert response.json()["error"]["type"] == "authentication_error"


async def test_unknown_key_ids_refresh_the_set_within_a_bound(
    http: httpx.AsyncClient, provider: tuple[Provider, str]
) -> None:
    found, _ = provider
    assert (await models(http, token(RSA_KEY, "RS256", "rsa-1"))).status_code == 200
    before = found.fetches
    flood = [token(RSA_KEY, "RS256", f"made-up-{n}") for n in range(30)]
    responses = await asyncio.gather(*(models(http, value) for value in flood))
    assert {r.status_code for r in responses} == {401}
    assert found.fetches - before <= 1  # 30 unknown ids, at most one fetch

    # A key rotated in is found once the bound allows a fetch.
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    found.keys["rsa-2"] = public_jwk("rsa-2", rotated, "RS256")
    await asyncio.sleep(0.6)
    assert (await models(http, token(rotated, "RS256", "rsa-2"))).status_code == 200


async def test_a_revoked_key_stops_working(
    http: httpx.AsyncClient, provider: tuple[Provider, str]
) -> None:
    found, _ = provider
    value = token(RSA_KEY, "RS256", "rsa-1")
    assert (await models(http, value)).status_code == 200
    del found.keys["rsa-1"]
    await asyncio.sleep(1.1)  # GATEWAY_JWT_JWKS_CACHE_S
    assert (await models(http, value)).status_code == 401


async def test_a_subject_longer_than_200_characters_is_refused(http: httpx.AsyncClient) -> None:
    long = await http.post(
        "/chat", json={"message": "hi"}, headers=bearer(token(RSA_KEY, "RS256", "rsa-1", "a" * 201))
    )
    assert long.status_code == 401
    assert "subject" in long.json()["error"]["message"]
