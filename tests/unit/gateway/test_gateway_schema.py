"""Schemathesis against the gateway's own OpenAPI schema: no 5xx for any input, and every
answer matches the schema. The app runs in process over fakes: a publisher that answers
each message at once (so no responder is needed) and a memory service that knows nothing."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tidings.common.events import (
    CancelRequest,
    ResponseDelta,
    ResponseDone,
    ResponseStart,
    UserMessage,
)
from tidings.common.memory_api import MemoryApiSettings, MemoryClient
from tidings.gateway.app import create_app
from tidings.gateway.hub import FanoutHub
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer, StreamEvent
from tidings.gateway.settings import GatewaySettings


class AnsweringPublisher:
    """Publishes nowhere; answers every message at once through the hub, like a responder."""

    running = True

    def __init__(self, hub: FanoutHub) -> None:
        self._hub = hub
        self._offsets = itertools.count()

    async def publish(self, message: UserMessage | CancelRequest, *, traceparent: str) -> None:
        if not isinstance(message, UserMessage):
            return
        ids = {"session_id": message.session_id, "message_id": message.message_id, "attempt": "a"}
        for event in (
            ResponseStart(**ids, source="faq"),
            ResponseDelta(**ids, seq=0, text="Hello."),
            ResponseDone(**ids, text="Hello.", source="faq"),
        ):
            self._hub.dispatch(StreamEvent(0, next(self._offsets), event, time.monotonic()))


def _empty_history(request: httpx.Request) -> httpx.Response:
    session_id = request.url.path.split("/")[2]
    if request.url.path.endswith("/owner"):
        return httpx.Response(200, json={"session_id": session_id, "exists": False})
    return httpx.Response(200, json={"session_id": session_id, "messages": []})


async def _up() -> bool:
    return True


def build_app(**overrides: Any) -> Any:
    gateway_settings = GatewaySettings(
        rate_per_s=10_000,
        rate_burst=10_000,
        request_rate_per_s=10_000,
        request_burst=10_000,
        answer_start_timeout_s=0.2,
        sse_ping_s=5,
        **overrides,
    )
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=1000, max_age_s=600),
        max_pending=100,
    )
    memory = MemoryClient(
        MemoryApiSettings(url="http://memory.test"), transport=httpx.MockTransport(_empty_history)
    )
    readiness = Readiness(producer_up=lambda: True, fanout_ready=lambda: True, broker_probe=_up)
    return create_app(
        gateway_settings,
        publisher=AnsweringPublisher(hub),
        hub=hub,
        readiness=readiness,
        memory=memory,
    )


# A request that breaks the schema is rejected with any of Schemathesis' default statuses, or
# with 413 when its body is too large (Schemathesis generates bodies of any size).
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                    "429",
                ]
            }
        }
    }
)  # fmt: skip
schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(), config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_gateway_api_matches_its_schema_and_never_fails_on_input(case: schemathesis.Case) -> None:
    if case.path == "/stream" and isinstance(case.query, dict):
        # A stream without a message id follows the session until the client leaves; give
        # it one so the stream ends (with `error` reason `timeout`, nothing answers it).
        case.query.setdefault("message_id", "schema-message")
    # Every other default check runs (server errors, status codes, content types, headers,
    # response schemas, negative data rejected). "Schema-valid data must be accepted" is left
    # out: some rules cannot be written in JSON Schema (the last OpenAI message must be the
    # user's; a cancel needs session_id in the query or the body; sizes are UTF-8 bytes).
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
