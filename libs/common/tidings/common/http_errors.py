"""JSON errors with a stable code for the internal HTTP APIs (memory, store).

Every error is `{"error": {"code": ..., "message": ...}}` with its HTTP status: an `ApiError`
raised by a route, FastAPI's own (404, 405 with its `Allow` header, ...) as `not_found` /
`http_<status>`, and a request that fails validation as 422 `invalid_request` naming at
most five problems. No stack trace reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


class ApiError(Exception):
    """An error with a stable code, answered as `{"error": {"code", "message"}}`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def install_error_handlers(app: Starlette) -> None:
    """Answer `ApiError`, FastAPI's HTTP errors and validation errors as JSON errors."""
    # Only the FastAPI apps (memory, store) call this; the responder's image has no FastAPI.
    from fastapi.exceptions import RequestValidationError

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        # Keep the exception's headers: a 405 must say what is `Allow`ed.
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'request'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        return error_response(422, "invalid_request", problems)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
