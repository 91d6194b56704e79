"""The gateway's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from tidings.gateway.api import chat, health, stream
from tidings.gateway.deps import GatewayContext
from tidings.gateway.errors import install_error_handlers
from tidings.gateway.hub import FanoutHub
from tidings.gateway.middleware import CatchAllMiddleware, MetricsMiddleware
from tidings.gateway.publisher import Publisher
from tidings.gateway.readiness import Readiness
from tidings.gateway.settings import GatewaySettings


def create_app(
    settings: GatewaySettings,
    *,
    publisher: Publisher,
    hub: FanoutHub,
    readiness: Readiness,
) -> FastAPI:
    """The HTTP API over objects whose lifecycle the caller owns (see `GatewayService`)."""
    app = FastAPI(
        title="Tidings gateway",
        summary="Send chat messages and stream the answers over Server-Sent Events.",
        version="0.1.0",
    )
    app.state.gateway = GatewayContext(
        settings=settings, publisher=publisher, hub=hub, readiness=readiness
    )
    install_error_handlers(app)
    app.include_router(chat.router, tags=["chat"])
    app.include_router(stream.router, tags=["chat"])
    app.include_router(health.router)
    # The last added is outermost: an unhandled error is counted as a 500 by the metrics
    # middleware, then answered as JSON by the catch-all around it.
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(CatchAllMiddleware)
    return app
