"""Schemathesis with the doors locked: the gateway with JWT on (one case at a time and in
stateful flows that follow the OpenAPI links of `POST /chat`: stream, history, cancel), and
the memory API behind its service credential. No input may give a 5xx, and every answer
must match the schema.

The apps run in process: the gateway over the fakes of `test_gateway_schema` (a publisher
that answers at once, a memory service that knows nothing), the memory API over Qdrant
local mode in a temporary folder with a one-direction embedder.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import schemathesis
from hypothesis import HealthCheck, settings
from qdrant_client import QdrantClient
from schemathesis.specs.openapi.checks import positive_data_acceptance
from test_gateway_schema import CONFIG, build_app

from tidings.memory.api import MemoryBackends, memory_app
from tidings.memory.collection import ModelStamp
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.settings import MemorySettings
from tidings.memory.store import Qdrant, TurnStore

JWT_SECRET = "schemathesis-jwt-secret-0123456789abcdef"
MEMORY_TOKEN = "schemathesis-memory-credential-0123456789"
# Rules JSON Schema cannot state (see test_gateway_schema): schema-valid data may be refused.
EXCLUDED = [positive_data_acceptance]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def bearer(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256")


# --- the gateway with JWT -----------------------------------------------------------------

gateway = schemathesis.openapi.from_asgi(
    "/openapi.json",
    build_app(auth="jwt", jwt_secret=JWT_SECRET, ownership_wait_s=0.0),
    config=CONFIG,
)


@gateway.auth()
class SignedIn:
    """Every generated request is Alice's (negative cases still vary everything else)."""

    def get(self, case: schemathesis.Case, context: Any) -> str:
        return bearer("alice")

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _bounded(case: schemathesis.Case) -> None:
    if case.path == "/stream" and isinstance(case.query, dict):
        # A stream without a message id follows the session until the client leaves.
        case.query.setdefault("message_id", "schema-message")


@gateway.parametrize()
@FUZZ
def test_the_signed_in_gateway_matches_its_schema(case: schemathesis.Case) -> None:
    _bounded(case)
    case.call_and_validate(excluded_checks=EXCLUDED)


class GatewayFlows(gateway.as_state_machine()):  # type: ignore[misc]
    """POST /chat, then what its links lead to, in any order, as Alice."""

    def before_call(self, case: schemathesis.Case) -> None:
        _bounded(case)

    def validate_response(
        self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
    ) -> None:
        case.validate_response(response, excluded_checks=EXCLUDED)


TestGatewayFlows = GatewayFlows.TestCase
TestGatewayFlows.settings = settings(
    max_examples=30,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


# --- the memory API behind its credential ---------------------------------------------------


class SameDirection:
    dimension = 3
    name = "same-direction"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]


def build_memory_app() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="schemathesis-memory-"))
    qdrant = Qdrant(QdrantClient(path=str(folder)), ThreadPoolExecutor(1), local=True)
    turns, knowledge = TurnStore(qdrant, "turns"), KnowledgeStore(qdrant, "kb")
    stamp = ModelStamp(SameDirection.name, SameDirection.dimension)

    async def prepare() -> None:
        await turns.ensure_collection(stamp)
        await knowledge.ensure_collection(stamp)

    asyncio.run(prepare())

    async def ready() -> dict[str, bool]:
        return {"qdrant": True}

    settings_ = MemorySettings(api_token=MEMORY_TOKEN)
    return memory_app(MemoryBackends(turns, knowledge, SameDirection()), settings_, ready)


memory = schemathesis.openapi.from_asgi("/openapi.json", build_memory_app(), config=CONFIG)


@memory.auth()
class ServiceCredential:
    def get(self, case: schemathesis.Case, context: Any) -> str:
        return MEMORY_TOKEN

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@memory.parametrize()
@FUZZ
def test_the_memory_api_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)
