"""What every tool answers with, and how its calls are counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tidings.responder import metrics

Outcome = Literal["found", "not_found", "asked", "rate_limited", "unavailable", "none"]
CONTACT = "support@bookstore.com"


@dataclass(frozen=True)
class ToolAnswer:
    """A tool's answer text and how the lookup went."""

    tool: str
    text: str
    outcome: Outcome


def counted(answer: ToolAnswer, seconds: float) -> ToolAnswer:
    """Count `answer` in the per-tool metrics (calls, outcome, latency) and return it."""
    metrics.TOOL_CALLS.labels(tool=answer.tool, outcome=answer.outcome).inc()
    metrics.TOOL_SECONDS.labels(tool=answer.tool, outcome=answer.outcome).observe(seconds)
    return answer
