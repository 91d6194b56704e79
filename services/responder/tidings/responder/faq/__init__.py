"""FAQ intents answered without the LLM."""

from tidings.responder.faq.catalog import FaqError, load_faq, parse_faq
from tidings.responder.faq.matcher import FaqMatch, FaqMatcher, Intent, normalize

__all__ = ["FaqError", "FaqMatch", "FaqMatcher", "Intent", "load_faq", "normalize", "parse_faq"]
