"""Match a user's message to a canned FAQ answer, or to nothing.

Both messages and phrases are normalised the same way (`normalize`), so a phrase matches
whole words of the message regardless of case, punctuation or Unicode look-alikes.

Precedence, so that the most specific intent answers:

1. A `whole_message` intent (greetings) answers only when the message consists of nothing
   but its phrases and filler words: "hello there!" is a greeting, "hi, what is your return
   policy?" is not.
2. Otherwise the intent with the longest match, counted in words, wins.
3. On a tie, the intent listed first in the file wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

# Apostrophes join contractions ("where's" -> "wheres") instead of splitting them.
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2018\u2019\u02bc\u0060\u00b4"), None)
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Lower-case NFKC text with punctuation removed and single spaces between words."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    return _NOT_WORD.sub(" ", text).strip()


def _word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Intent:
    """One FAQ entry: when it applies and what it answers."""

    id: str
    answer: str
    phrases: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    whole_message: bool = False
    filler: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        id: str,
        answer: str,
        *,
        phrases: Iterable[str] = (),
        questions: Iterable[str] = (),
        patterns: Iterable[str] = (),
        whole_message: bool = False,
        filler: Iterable[str] = (),
    ) -> Intent:
        """An intent whose phrases are normalised and whose patterns are compiled."""
        normalised = {normalize(phrase) for phrase in phrases} - {""}
        return cls(
            id=id,
            answer=answer,
            # Longest first, so a whole-message check consumes "good morning" before "good".
            phrases=tuple(sorted(normalised, key=lambda p: (-_word_count(p), p))),
            questions=tuple(q.strip() for q in questions if q.strip()),
            patterns=tuple(re.compile(pattern) for pattern in patterns),
            whole_message=whole_message,
            filler=frozenset(normalize(word) for word in filler),
        )

    @cached_property
    def _needles(self) -> tuple[tuple[str, int], ...]:
        """Each phrase padded with spaces (whole words only) and its length in words,
        longest first: computed once, since every message is checked against them all."""
        ordered = sorted(self.phrases, key=lambda p: -_word_count(p))
        return tuple((f" {phrase} ", _word_count(phrase)) for phrase in ordered)

    def longest_match(self, text: str) -> int:
        """Words in the longest phrase or pattern match inside normalised `text`; 0 if none."""
        padded = f" {text} "
        # Longest first: the first phrase found is the longest one.
        best = next((words for needle, words in self._needles if needle in padded), 0)
        for pattern in self.patterns:
            for found in pattern.finditer(text):
                best = max(best, _word_count(found.group(0)))
        return best

    def is_whole_message(self, text: str) -> bool:
        """True when normalised `text` is only this intent's phrases and filler words."""
        remaining = f" {text} "
        found = False
        for phrase in self.phrases:
            needle = f" {phrase} "
            while needle in remaining:
                remaining = remaining.replace(needle, " ")
                found = True
        return found and all(word in self.filler for word in remaining.split())


@dataclass(frozen=True)
class FaqMatch:
    """The intent that answers a message, and how long its match was (in words)."""

    intent: Intent
    words: int

    @property
    def answer(self) -> str:
        return self.intent.answer


class FaqMatcher:
    """Finds the canned answer for a message, following the precedence in the module doc."""

    def __init__(self, intents: Sequence[Intent], *, fallback: str) -> None:
        ids = [intent.id for intent in intents]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate FAQ intent ids: {duplicates}")
        self.intents = tuple(intents)
        self.fallback = fallback

    def match(self, text: str) -> FaqMatch | None:
        """The best intent for `text`, or None when the FAQ does not cover it."""
        normalised = normalize(text)
        if not normalised:
            return None
        for intent in self.intents:
            if intent.whole_message and intent.is_whole_message(normalised):
                return FaqMatch(intent, _word_count(normalised))
        best: FaqMatch | None = None
        for intent in self.intents:
            if intent.whole_message:
                continue
            words = intent.longest_match(normalised)
            # Strictly greater: on a tie the earlier intent keeps its place.
            if words and (best is None or words > best.words):
                best = FaqMatch(intent, words)
        return best
