"""What the routes depend on, gathered as `Annotated` aliases.

The long-lived objects are owned by `GatewayService` (or a test) and handed to `create_app`,
which keeps them on `app.state`; routes never reach for globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidings.common.memory_api import MemoryClient
from tidings.gateway.auth import Authenticator, Caller
from tidings.gateway.capacity import LoadShedder
from tidings.gateway.hub import FanoutHub
from tidings.gateway.limits import RateLimiter, StreamCap
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.publisher import Publisher
from tidings.gateway.readiness import Readiness
from tidings.gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """The objects one gateway app works with."""

    settings: GatewaySettings
    publisher: Publisher
    hub: FanoutHub
    readiness: Readiness
    authenticator: Authenticator
    owners: OwnershipMap
    limiter: RateLimiter
    streams: StreamCap
    request_limiter: RateLimiter
    """Stream opens, history pages and cancels (a bucket of their own)."""
    shedder: LoadShedder
    memory: MemoryClient | None
    broker_down_for: Callable[[], float]


def context_of(request: Request) -> GatewayContext:
    """The gateway's shared state (set on the app at start-up)."""
    return cast(GatewayContext, request.app.state.gateway)


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker thread, which
# costs a thread hop on every request.
async def get_context(request: Request) -> GatewayContext:
    return context_of(request)


async def get_readiness(request: Request) -> Readiness:
    return context_of(request).readiness


# Declares the bearer scheme in the OpenAPI schema; the Authenticator does the checking
# (and ignores it when GATEWAY_AUTH=none).
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT when GATEWAY_AUTH=jwt.")
BEARER_SCHEME = bearer_scheme.scheme_name
"""The scheme's name in the OpenAPI schema, for operations that declare it themselves."""


async def get_caller(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """The authenticated caller (401 when a token is required and missing or invalid)."""
    return await context_of(request).authenticator.caller(request)


ContextDep = Annotated[GatewayContext, Depends(get_context)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
CallerDep = Annotated[Caller, Depends(get_caller)]
