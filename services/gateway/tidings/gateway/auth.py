"""The front door: who is calling (`GATEWAY_AUTH=none|jwt`) and may they see this session.

With `jwt`, every chat, stream, history, cancel and `/v1` request needs
`Authorization: Bearer <token>`: HS256 with `GATEWAY_JWT_SECRET`, or RS256/ES256 with keys
from `GATEWAY_JWT_JWKS_URL` (fetched by PyJWT's `PyJWKClient`, cached). `exp` and `sub` are
required; `aud` and `iss` are checked when configured. A session belongs to the subject that
created it; anyone else is told 404, the same as for a session that does not exist, so ids
cannot be probed.

With `none`, the session id is the only key: anyone with the id can read the session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from tidings.common.memory_api import MemoryClient
from tidings.gateway.errors import ApiError
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.settings import GatewaySettings

_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the JWT subject (None when anonymous) and the key limits count against."""

    subject: str | None
    limit_key: str


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "No such session.")


class Authenticator:
    """Turns a request into a `Caller`, or raises 401."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        if settings.auth == "jwt" and settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5
            )

    @property
    def enabled(self) -> bool:
        return self._settings.auth == "jwt"

    async def caller(self, request: Request) -> Caller:
        """The authenticated caller; anonymous callers are keyed by their IP."""
        if not self.enabled:
            host = request.client.host if request.client is not None else "unknown"
            return Caller(None, f"ip:{host}")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("A bearer token is required.")
        claims = await self._verify(token.strip())
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized("The token has no subject.")
        return Caller(subject, f"sub:{subject}")

    async def _verify(self, token: str) -> dict[str, Any]:
        settings = self._settings
        required = ["exp", "sub"]
        if settings.jwt_audience:
            required.append("aud")
        if settings.jwt_issuer:
            required.append("iss")
        try:
            key: Any
            if self._jwks is not None and _is_asymmetric(token):
                # The JWKS fetch is blocking I/O; it happens once per key id, then is cached.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key, algorithms = signing_key.key, _ASYMMETRIC
            elif settings.jwt_secret is not None:
                key, algorithms = settings.jwt_secret.get_secret_value(), ["HS256"]
            else:
                raise unauthorized("The token's algorithm is not accepted.")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired.") from None
        except jwt.PyJWKClientError:
            raise unauthorized("The token's signing key could not be found.") from None
        except jwt.InvalidTokenError:
            raise unauthorized("The token is not valid for this service.") from None
        return claims


def _is_asymmetric(token: str) -> bool:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise unauthorized("The token is malformed.") from None
    return header.get("alg") in _ASYMMETRIC


NOBODY = ""
"""`session_owner`: the session exists but was started anonymously, so no subject owns it."""


async def session_owner(
    session_id: str, owners: OwnershipMap, memory: MemoryClient | None, *, wait_s: float
) -> str | None:
    """The subject owning `session_id`: from this replica's map, else durably from the
    memory service (which keeps the owner with the turns), else - for a session that may
    have just been created through another replica - from the `user_messages` reader
    within `wait_s`. None: nobody owns it yet; `NOBODY`: an anonymous session.

    When the memory service cannot say, the answer is 503: a dormant session must not be
    taken over because its owner could not be looked up.
    """
    owner = owners.owner(session_id)
    if owner is not None:
        return owner
    if memory is not None:
        durable = await memory.session_owner(session_id)
        if durable is None:
            raise ApiError(
                503,
                "ownership_unavailable",
                "The session's owner cannot be checked right now; try again.",
                headers={"Retry-After": "2"},
            )
        if durable.exists:
            if durable.user is None:
                return NOBODY
            owners.record(session_id, durable.user)
            return durable.user
    return await owners.wait_for_owner(session_id, wait_s)


async def check_session_access(
    caller: Caller,
    session_id: str,
    owners: OwnershipMap,
    *,
    wait_s: float,
    memory: MemoryClient | None = None,
) -> None:
    """404 unless `caller` owns `session_id` (always allowed when anonymous)."""
    if caller.subject is None:
        return
    owner = await session_owner(session_id, owners, memory, wait_s=wait_s)
    if owner != caller.subject:
        raise session_not_found()
