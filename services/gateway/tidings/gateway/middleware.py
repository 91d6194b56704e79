"""ASGI middleware: security headers, request metrics and the last line of defence against
unhandled errors.

Plain ASGI (not `BaseHTTPMiddleware`) so SSE responses stream through untouched.
"""

from __future__ import annotations

import functools
from typing import Any

from sse_starlette.sse import SendTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.common.logging import get_logger
from tidings.gateway.errors import error_response
from tidings.gateway.metrics import HTTP_REQUESTS, STREAMS_DROPPED

log = get_logger(__name__)


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# The interactive API docs load their scripts and styles from a CDN.
DOCS_CSP = (
    b"default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PATHS = {"/docs", "/redoc"}


def with_security_headers(message: Message, *, docs: bool, hsts: bytes | None = None) -> Message:
    """The `http.response.start` message with CSP and the hardening headers (unless set), and
    `Strict-Transport-Security` when `hsts` is given (the request came over HTTPS)."""
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _ in headers}
    for name, value in SECURITY_HEADERS:
        if name not in present:
            if docs and name == b"content-security-policy":
                value = DOCS_CSP
            headers.append((name, value))
    if hsts is not None and b"strict-transport-security" not in present:
        headers.append((b"strict-transport-security", hsts))
    return {**message, "headers": headers}


@functools.lru_cache(maxsize=1024)
def _requests_counter(template: str, method: str, status: int) -> Any:
    """The labelled child of `HTTP_REQUESTS`, looked up once per label set rather than on
    every request (`labels()` takes a lock and builds its key each time)."""
    return HTTP_REQUESTS.labels(template, method, str(status))


class EdgeMiddleware:
    """What every HTTP answer goes through, in one layer (one `send` wrapper, not three):

    - security headers (CSP and the usual hardening headers) on every answer, errors too;
    - request metrics by route template (not raw path), method and status;
    - the last line of defence: an unhandled exception becomes a logged 500
      `internal_error` JSON answer (counted as a 500), never a stack trace.
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0) -> None:
        self.app = app
        # Browsers ignore HSTS over plain HTTP, and sending it there would be wrong anyway:
        # only answers to HTTPS requests (uvicorn takes the scheme from a trusted proxy's
        # X-Forwarded-Proto) carry it.
        self._hsts = (
            f"max-age={hsts_max_age_s}; includeSubDomains".encode() if hsts_max_age_s else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path") in _DOCS_PATHS
        hsts = self._hsts if scope.get("scheme") == "https" else None
        status = 500
        started = False

        async def edge_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message = with_security_headers(message, docs=docs, hsts=hsts)
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        except SendTimeoutError:
            # A client that stopped reading: its stream is closed, nothing is wrong here.
            STREAMS_DROPPED.inc()
            log.info("stream closed: the client stopped reading", path=scope.get("path"))
        except Exception:
            log.exception("unhandled error", path=scope.get("path"), method=scope.get("method"))
            if started:
                # Headers are gone already; let the server abort the connection.
                raise
            response = error_response(500, "internal_error", "Something went wrong on our side.")
            await response(scope, receive, edge_send)
        finally:
            route = scope.get("route")
            # Unmatched paths are bucketed together so scanners cannot explode label cardinality.
            template = getattr(route, "path", None) or "unmatched"
            _requests_counter(template, scope.get("method", ""), status).inc()
