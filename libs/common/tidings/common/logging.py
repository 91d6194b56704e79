"""JSON logs, one object per line, with the ids that tell one message's story.

`bind(session_id=..., message_id=..., attempt=...)` puts ids into a context variable so
every log line written while handling that message carries them, including lines from
libraries that log through the standard `logging` module (aiokafka, uvicorn).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
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
    root.setLevel(settings.level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry the ids bound with `bind`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Attach ids (session_id, message_id, attempt, trace_id) to log lines in this context."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield
