"""The credential between services: a shared secret sent as `Authorization: Bearer <token>`.

The memory service requires it on every data route (`MEMORY_API_TOKEN`); the responder and
the gateway send it. Compared in constant time, so its bytes cannot be guessed by timing.
"""

from __future__ import annotations

import hmac
import ipaddress

from pydantic import SecretStr


def is_loopback(host: str) -> bool:
    """True when `host` is an interface only this machine can reach (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_header(token: SecretStr | None) -> dict[str, str]:
    """The request header that carries `token` (none when no token is configured)."""
    if token is None:
        return {}
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def bearer_matches(authorization: str | None, token: SecretStr) -> bool:
    """True when an `Authorization` header value carries exactly `token`."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode())
