"""JSON logs, one object per line, with the ids that tell one message's story.

`bind(session_id=..., message_id=..., attempt=...)` puts ids into a context variable so
every log line written while handling that message carries them, including lines from
libraries that log through the standard `logging` module (aiokafka, uvicorn).

A session id is a key to the conversation (with GATEWAY_AUTH=none, the only one), so lines
at INFO and above carry a digest of it instead (`session_id: "h:<16 hex>"`): the same
session still has the same value on every line and in every service, but whoever reads
the logs cannot open the conversation. DEBUG lines keep the id itself.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import sys
from collections.abc import Mapping
from typing import Any

import structlog

from tidings.common.settings import LogSettings

_NOISY = ("aiokafka", "kafka", "httpx", "httpcore", "uvicorn.access", "sentence_transformers")


def configure_logging(service: str, settings: LogSettings | None = None) -> None:
    """Route structlog and stdlib logging to stderr as JSON (or console) lines."""
    settings = settings or LogSettings()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        _session_digest,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # A line below the level is dropped before any other processor works on it.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


_SESSION_KEYS = ("session_id", "session")


def session_digest(session_id: str) -> str:
    """What log lines at INFO and above show of a session id."""
    return "h:" + hashlib.sha256(session_id.encode()).hexdigest()[:16]


def _session_digest(_: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if method == "debug" or event_dict.get("level") == "debug":
        return event_dict
    for key in _SESSION_KEYS:
        value = event_dict.get(key)
        if isinstance(value, str) and not value.startswith("h:"):
            event_dict[key] = session_digest(value)
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry the ids bound with `bind`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


class bind:
    """Attach ids (session_id, message_id, attempt, trace_id) to log lines in this context.

    `with bind(message_id=...):` sets structlog's context variables and, on leaving, resets
    each to what it was. Resetting by token is exact and cheap; structlog's own
    `bound_contextvars` first copies the whole context to find what to restore, which was
    a measurable share of a `POST /chat` (docs/benchmarks.md, gateway (a)).
    """

    __slots__ = ("_ids", "_tokens")

    def __init__(self, **ids: Any) -> None:
        self._ids = ids
        self._tokens: Mapping[str, contextvars.Token[Any]] = {}

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._ids)

    def __exit__(self, *exc: object) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)
