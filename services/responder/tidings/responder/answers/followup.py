"""Follow-up questions: "And to Japan?" after "Do you ship to Canada?".

A short message that continues the previous question ("and ...", "what about ...", "how
about ...", or one that refers back with "it", "that", "them") is looked up together with
the previous user message, so retrieval and routing see the whole question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tidings.responder.answers.text import content_stems, tokens

_CONTINUATION = re.compile(
    r"^\s*(?:(?:ok|okay|so|hmm|right|thanks|great)\W+)?(?:and|or|also|but|then|plus|even|"
    r"what about|how about|same for|what if|in that case|for|to|with)\b",
    re.IGNORECASE,
)
_BACK_REFERENCES = frozenset({"it", "that", "this", "them", "those", "these", "they", "there"})
_MAX_WORDS = 8


def is_followup(question: str) -> bool:
    """True when `question` only makes sense after the previous one."""
    words = tokens(question)
    if not words or len(words) > _MAX_WORDS:
        return False
    if _CONTINUATION.match(question):
        return True
    # "Is it free?", "How much is that?": few content words and a word pointing back.
    return len(content_stems(question)) <= 3 and bool(_BACK_REFERENCES & set(words))


def with_previous(question: str, previous_questions: Sequence[str]) -> str:
    """The question to look up: the previous user message and this one, when it follows up."""
    if not previous_questions or not is_followup(question):
        return question
    return f"{previous_questions[-1].strip()} {question.strip()}"
