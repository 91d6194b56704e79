"""The identity provider's signing keys (`GATEWAY_JWT_JWKS_URL`), kept fresh and bounded.

The key set is fetched again once it is `GATEWAY_JWT_JWKS_CACHE_S` old, so a key the
provider revoked stops working within that time. A token naming a key id the set lacks (a
key rotated in) triggers a fetch at once - but at most one per `GATEWAY_JWT_JWKS_MIN_REFRESH_S`,
so tokens with made-up key ids cannot make the gateway hammer the provider.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import jwt

from tidings.common.logging import get_logger

log = get_logger(__name__)


class UnknownKeyError(LookupError):
    """No signing key with the token's key id (after the refresh the bound allows)."""


class JwksKeys:
    """Signing keys by key id, fetched with PyJWT's `PyJWKClient` in a worker thread."""

    def __init__(
        self,
        url: str,
        *,
        max_age_s: float,
        min_refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # PyJWKClient only fetches and parses here: caching is ours (its key cache keeps a
        # key forever, its set cache refreshes on every unknown key id).
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=5)
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # last attempt (bounds how often one is made)
        self._loaded_at = -math.inf  # last success (bounds how old a key may get)
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with id `kid` (or the only key, for a token without one)."""
        async with self._lock:
            age = self._clock() - self._fetched_at
            if age >= self._max_age_s or (self._find(kid) is None and age >= self._min_refresh_s):
                await self._refresh()
            found = self._find(kid)
        if found is None:
            raise UnknownKeyError(kid)
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            keys = await asyncio.to_thread(self._client.get_signing_keys)
        except jwt.PyJWKClientError as exc:
            # Keys fetched before stay until they are too old: a provider outage does not
            # log everyone out at once, nor keep a revoked key alive past its age.
            log.warning("JWKS fetch failed", error=str(exc)[:300])
            if self._clock() - self._loaded_at >= self._max_age_s:
                self._keys = {}
            return
        self._loaded_at = self._clock()
        self._keys = {key.key_id or "": key for key in keys}
