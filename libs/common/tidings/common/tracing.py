"""W3C trace context carried in Kafka headers, so one message can be followed across services."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

TRACEPARENT_HEADER = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    """A fresh sampled `traceparent` value (version 00)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """A `traceparent` for a new span in the same trace as `parent` (or a new trace)."""
    trace_id = trace_id_of(parent)
    if trace_id is None:
        return new_traceparent()
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a `traceparent` value, or None if it is missing or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    return match.group(1) if match else None


class InvalidHeaderError(ValueError):
    """A record header a worker cannot use (the record goes to the dead-letter topic)."""


def traceparent_from_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """Read the `traceparent` header of a consumed Kafka record (None when it has none).

    Raises `InvalidHeaderError` for a header that is there but null or not ASCII: Kafka
    allows both, and a worker must dead-letter such a record rather than crash on it.
    """
    for key, value in headers or ():
        if key == TRACEPARENT_HEADER:
            if value is None:
                raise InvalidHeaderError("invalid traceparent header: null")
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidHeaderError("invalid traceparent header: not ASCII") from None
    return None
