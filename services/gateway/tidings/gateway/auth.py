"""The front door: who is calling (`GATEWAY_AUTH=none|jwt`) and may they see this session.

With `jwt`, every chat, stream, history, cancel and `/v1` request needs
`Authorization: Bearer <token>`: HS256 with `GATEWAY_JWT_SECRET`, or RS/ES/PS with keys
from `GATEWAY_JWT_JWKS_URL` (tidings.gateway.jwks), each key with its own algorithm only.
`exp` and `sub` (at most 200 characters) are required; `aud` and `iss` are checked when
configured. Any token PyJWT refuses is a 401. A session belongs to the subject that created
it (durably: memory keeps it with the turns); anyone else is told 404, the same as for a
session that does not exist, so ids cannot be probed.

With `none`, the session id is the only key: anyone with the id can read the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from tidings.common.memory_api import MemoryClient
from tidings.gateway.errors import ApiError
from tidings.gateway.jwks import JwksKeys, UnknownKeyError
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.settings import GatewaySettings

_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
MAX_SUBJECT_CHARS = 200


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
        self._jwks: JwksKeys | None = None
        if settings.auth == "jwt" and settings.jwt_jwks_url:
            self._jwks = JwksKeys(
                settings.jwt_jwks_url,
                max_age_s=settings.jwt_jwks_cache_s,
                min_refresh_s=settings.jwt_jwks_min_refresh_s,
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
        if len(subject) > MAX_SUBJECT_CHARS:
            # Subjects travel in events and memory lookups, which take 200 characters.
            raise unauthorized("The token's subject is too long.")
        return Caller(subject, f"sub:{subject}")

    async def _verify(self, token: str) -> dict[str, Any]:
        settings = self._settings
        required = ["exp", "sub"]
        if settings.jwt_audience:
            required.append("aud")
        if settings.jwt_issuer:
            required.append("iss")
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key: Any
            if self._jwks is not None and algorithm in _ASYMMETRIC:
                jwk = await self._jwks.key(header.get("kid"))
                # The key decides the algorithm: a token naming another one (ES256 with an
                # RSA key, PS256 with an RS256 key) is refused, never tried.
                if jwk.algorithm_name != algorithm:
                    raise unauthorized("The token's algorithm does not match its key.")
                key, algorithms = jwk.key, [jwk.algorithm_name]
            elif settings.jwt_secret is not None and algorithm == "HS256":
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
        except UnknownKeyError:
            raise unauthorized("The token's signing key could not be found.") from None
        except jwt.PyJWTError:
            # Every other PyJWT error (malformed, bad signature, a key it cannot use) is the
            # token's fault: 401, never a 500.
            raise unauthorized("The token is not valid for this service.") from None
        return claims


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
