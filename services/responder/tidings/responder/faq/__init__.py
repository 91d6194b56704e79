"""FAQ intents answered without the LLM."""

from tidings.responder.faq.catalog import FaqError, load_faq, parse_faq
from tidings.responder.faq.matcher import FaqMatch, FaqMatcher, Intent, normalize
from tidings.responder.faq.store import FaqStore

__all__ = [
    "FaqError",
    "FaqMatch",
    "FaqMatcher",
    "FaqStore",
    "Intent",
    "load_faq",
    "normalize",
    "parse_faq",
]
