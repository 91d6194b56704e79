"""What kind of fact a question asks for, and whether a sentence gives one.

"How much is express shipping?" asks for an amount; "How long do refunds take?" for a
duration; "What's the cut-off time?" for a time of day; "Where do orders ship from?" for a
place. Among sentences equally close to the question, the one that gives that kind of fact
is the answer: "We ship to Australia" is about the question "How much is shipping to
Australia?", but "International orders take 7-14 business days with standard international
shipping ($14.99)" answers it. This is the answer-type check of classic question
answering, done with patterns: it knows English question words and the facts `facts.py`
extracts, nothing about any one knowledge base.
"""

from __future__ import annotations

import re
from typing import Literal

from tidings.responder.answers.facts import facts

Kind = Literal["money", "duration", "count", "clock", "place"]

_ASKS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    (
        "money",
        re.compile(
            r"\bhow much\b(?! (?:time|longer)\b)|\b(?:cost|costs|price|prices|priced|pricing|"
            r"fee|fees|charge|charges|expensive|cheap|cheaper|cheapest|rate|rates)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "duration",
        re.compile(
            r"\bhow (?:long|soon|fast|quickly)\b|\bhow many (?:days|weeks|hours|months)\b|"
            r"\b(?:days?|weeks?) (?:do|does|will) it take\b|\bwithin how\b",
            re.IGNORECASE,
        ),
    ),
    ("count", re.compile(r"\bhow many\b(?! (?:days|weeks|hours|months)\b)", re.IGNORECASE)),
    (
        "clock",
        re.compile(r"\bwhat time\b|\bcut-?off\b|\bdeadline\b|\bby when\b", re.IGNORECASE),
    ),
    ("place", re.compile(r"\bwhere\b", re.IGNORECASE)),
)

_DURATION = re.compile(
    r"\b\d[\d,.]*(?:\s*(?:-|to|\u2013)\s*\d[\d,.]*)?[\s-]*(?:business\s+|working\s+)?"
    r"(?:minutes?|hours?|days?|weeks?|months?|years?)\b|\b(?:same|next)(?:\s+business)?\s+day\b|"
    r"\binstantly\b",
    re.IGNORECASE,
)
# A named place after a preposition: "from our warehouse in Portland", "under Orders in
# your account", "at any post office" is no name.
_PLACE = re.compile(r"\b(?:in|from|at|under|on)\s+(?:(?:our|the|your)\s+)?[A-Z][\w-]+")
_CLOCK = re.compile(
    r"\b\d{1,2}(?::\d\d)?\s*(?:a\.m\.|p\.m\.|am\b|pm\b)|\bnoon\b|\bmidnight\b", re.IGNORECASE
)


def asked_kinds(question: str) -> set[Kind]:
    """The kinds of fact `question` asks for (empty: none in particular)."""
    return {kind for kind, pattern in _ASKS if pattern.search(question)}


def gives(sentence: str, kinds: set[Kind]) -> bool:
    """True when `sentence` states a fact of one of `kinds`."""
    if not kinds:
        return False
    found = {fact.kind for fact in facts(sentence)}
    if "money" in kinds and "money" in found:
        return True
    if "count" in kinds and found & {"number", "money", "percent"}:
        return True
    if "duration" in kinds and _DURATION.search(sentence):
        return True
    if "place" in kinds and _PLACE.search(sentence):
        return True
    return "clock" in kinds and bool(_CLOCK.search(sentence))
