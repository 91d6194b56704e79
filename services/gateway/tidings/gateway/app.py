"""The gateway's FastAPI application."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from tidings.common.memory_api import MemoryClient
from tidings.gateway.api import chat, health, openai, sessions, stream
from tidings.gateway.auth import Authenticator
from tidings.gateway.capacity import LoadShedder, budget_of
from tidings.gateway.deps import GatewayContext
from tidings.gateway.errors import install_error_handlers
from tidings.gateway.hub import FanoutHub
from tidings.gateway.limits import RateLimiter, StreamCap
from tidings.gateway.middleware import EdgeMiddleware
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.publisher import Publisher
from tidings.gateway.readiness import Readiness
from tidings.gateway.settings import GatewaySettings
from tidings.gateway.widget import router as widget_router


def _always_up() -> float:
    return 0.0


def create_app(
    settings: GatewaySettings,
    *,
    publisher: Publisher,
    hub: FanoutHub,
    readiness: Readiness,
    owners: OwnershipMap | None = None,
    memory: MemoryClient | None = None,
    broker_down_for: Callable[[], float] = _always_up,
) -> FastAPI:
    """The HTTP API over objects whose lifecycle the caller owns (see `GatewayService`)."""
    app = FastAPI(
        title="Tidings gateway",
        summary="Send chat messages and stream the answers over Server-Sent Events.",
        version="0.2.0",
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
        **_telemetry_option(settings.otel_telemetry),
    )
    bounds = budget_of(settings)
    app.state.gateway = GatewayContext(
        settings=settings,
        publisher=publisher,
        hub=hub,
        readiness=readiness,
        authenticator=Authenticator(settings),
        owners=owners if owners is not None else OwnershipMap(settings.ownership_max_sessions),
        limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
        streams=StreamCap(settings.max_streams_per_subject, bounds.max_open_streams),
        request_limiter=RateLimiter(settings.request_rate_per_s, settings.request_burst),
        shedder=LoadShedder(bounds.shed_at_bytes),
        memory=memory,
        broker_down_for=broker_down_for,
    )
    install_error_handlers(app)
    app.add_exception_handler(openai.OpenAIApiError, openai.openai_error_handler)
    app.include_router(chat.router, tags=["chat"])
    app.include_router(stream.router, tags=["chat"])
    app.include_router(sessions.router, tags=["chat"])
    app.include_router(openai.router)
    app.include_router(health.router)
    app.include_router(widget_router)
    # The last added is outermost: every answer, errors included, gets the security headers
    # and is counted (EdgeMiddleware), and CORS is decided before anything else.
    app.add_middleware(EdgeMiddleware, hsts_max_age_s=settings.hsts_max_age_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Session-Id"],
            expose_headers=["X-Session-Id", "X-Message-Id", "Retry-After"],
            max_age=600,
        )
    # With no allowed origin (the default) there is no CORS layer at all: a browser gets
    # no `Access-Control-Allow-Origin` from any answer, and every request skips the layer.
    if settings.auth == "none":
        _drop_security_from_schema(app)
    return app


def _telemetry_option(enabled: bool) -> dict[str, Any]:
    """FastAPI's `telemetry=` argument that turns its OpenTelemetry instrumentation off.

    FastAPI (0.165 here) asks the global OpenTelemetry providers on every request whether
    anyone listens, which costs the busiest endpoint about 7 us; with GATEWAY_OTEL_TELEMETRY
    it stays on. An older FastAPI without the argument has no such instrumentation.
    """
    if enabled or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"telemetry": off}


def _drop_security_from_schema(app: FastAPI) -> None:
    """Without auth no request needs a token: say so in the published schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.pop("security", None)
            schema.get("components", {}).pop("securitySchemes", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
