"""The FAQ in use, and its reload (on SIGHUP) without a restart.

A reload reads and validates the whole file first and swaps the matcher only when it is
valid: an operator's typo keeps the old catalogue answering, and the log says why.
Answers already being written keep the matcher they started with.
"""

from __future__ import annotations

from pathlib import Path

from tidings.common.logging import get_logger
from tidings.responder import metrics
from tidings.responder.faq.catalog import FaqError, load_faq
from tidings.responder.faq.matcher import FaqMatcher

log = get_logger(__name__)


class FaqStore:
    """Holds the current `FaqMatcher` of RESPONDER_FAQ_PATH (or the packaged FAQ)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.matcher: FaqMatcher = load_faq(path)

    def reload(self) -> bool:
        """Load the file again; True when the new catalogue is in use."""
        try:
            matcher = load_faq(self.path)
        except FaqError as exc:
            metrics.FAQ_RELOADS.labels(outcome="invalid").inc()
            log.error("FAQ reload failed; keeping the previous FAQ", error=str(exc)[:2000])
            return False
        self.matcher = matcher
        metrics.FAQ_RELOADS.labels(outcome="ok").inc()
        log.info("FAQ reloaded", path=str(self.path or "(packaged)"), intents=len(matcher.intents))
        return True
