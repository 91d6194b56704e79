"""Probes and scraping: `GET /health`, `GET /ready`, `GET /metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import JSONResponse, Response

from tidings.gateway.deps import ReadinessDep

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """200 while the process is alive."""
    return {"status": "ok", "service": "gateway"}


@router.get(
    "/ready",
    summary="Readiness",
    responses={503: {"description": "Not ready; `checks` says which part is down."}},
)
async def ready(readiness: ReadinessDep) -> JSONResponse:
    """200 when the producer is up, the broker answers and the fan-out has its partitions."""
    checks = await readiness.checks()
    ok = all(checks.values())
    body: dict[str, Any] = {"ready": ok, "service": "gateway", "checks": checks}
    if not ok:
        failing = ", ".join(name for name, passed in checks.items() if not passed)
        body["error"] = {"code": "not_ready", "message": f"Not ready: {failing}."}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
