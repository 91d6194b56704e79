"""The operations endpoints every worker serves: `/health`, `/ready`, `/metrics`.

`/health` answers while the process is alive (liveness); `/ready` answers 200 only while
the worker can do its job (its readiness check passes), 503 otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidings.common.metrics import metrics_endpoint

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def ops_app(service: str, ready_check: ReadyCheck) -> Starlette:
    """A small app for probes and scraping; `ready_check` returns named checks."""

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    async def ready(_: Request) -> JSONResponse:
        checks = await ready_check()
        ok = all(checks.values())
        return JSONResponse(
            {"ready": ok, "service": service, "checks": checks}, status_code=200 if ok else 503
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics_endpoint),
        ]
    )
