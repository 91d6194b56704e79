"""Which canned FAQ answer, if any, answers a message: by meaning, then by words.

A canned answer is given only when it answers the question that was asked:

1. Greetings (`whole_message` intents) answer when the message is nothing but a greeting.
2. Otherwise the message must *mean* one of the intent's `questions` (cosine similarity of
   the embeddings at least `min_similarity`) and use no content word foreign to the intent
   (its questions and its answer): "How much does express shipping cost?" is close to "How
   long does shipping take?" but "cost" is foreign to it, so it is left to the knowledge base.
3. A message that is nothing but an intent's phrases or patterns ("refunds?", "where is my
   order") is the generic question the canned answer was written for.
4. Without embeddings (the memory service is down) the FAQ's phrases find the intent,
   under the same word rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tidings.common.words import STOPWORDS, content_stems
from tidings.responder.faq.matcher import FaqMatcher, Intent, normalize


@dataclass(frozen=True, slots=True)
class FaqChoice:
    """The intent that answers, how it was found, and how close the message was."""

    intent: Intent
    via: str  # greeting, meaning, phrases
    similarity: float | None = None


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def intent_examples(intent: Intent) -> list[str]:
    """What a message is compared with: the intent's questions (or its longer phrases)."""
    return list(intent.questions) or [p for p in intent.phrases if len(p.split()) >= 3]


def intent_vocabulary(intent: Intent) -> frozenset[str]:
    """The content stems an intent's questions and answer use."""
    words: set[str] = set(content_stems(intent.answer))
    for example in intent_examples(intent):
        words |= content_stems(example)
    return frozenset(words)


@dataclass(frozen=True, slots=True)
class _Entry:
    intent: Intent
    vocabulary: frozenset[str]
    vectors: tuple[tuple[float, ...], ...]


class FaqRouter:
    """Routes messages to FAQ intents; built per FAQ catalogue (a reload builds a new one)."""

    def __init__(
        self,
        matcher: FaqMatcher,
        vectors: dict[str, list[list[float]]] | None,
        *,
        min_similarity: float,
    ) -> None:
        """`vectors`: intent id -> the embeddings of `intent_examples`, or None (phrases only)."""
        self.matcher = matcher
        self.min_similarity = min_similarity
        self.semantic = vectors is not None
        self._entries = [
            _Entry(
                intent,
                intent_vocabulary(intent),
                tuple(tuple(v) for v in (vectors or {}).get(intent.id, [])),
            )
            for intent in matcher.intents
            if not intent.whole_message
        ]

    def greeting(self, text: str) -> FaqChoice | None:
        """A whole-message intent (a greeting), when the message is nothing else."""
        found = self.matcher.match(text)
        if found is not None and found.intent.whole_message:
            return FaqChoice(found.intent, "greeting")
        return None

    def choose(self, text: str, vector: Sequence[float] | None) -> FaqChoice | None:
        """The intent whose canned answer answers `text`, or None."""
        greeting = self.greeting(text)
        if greeting is not None:
            return greeting
        asked = content_stems(text)
        if not asked:
            return None
        whole = self._whole_phrase(text)
        if whole is not None:
            return whole
        if vector is not None and self.semantic:
            best: FaqChoice | None = None
            for entry in self._entries:
                if not entry.vectors or not asked <= entry.vocabulary:
                    continue
                similarity = max(cosine(vector, v) for v in entry.vectors)
                if similarity >= self.min_similarity and (
                    best is None or similarity > (best.similarity or 0.0)
                ):
                    best = FaqChoice(entry.intent, "meaning", round(similarity, 4))
            return best
        found = self.matcher.match(text)
        if found is None:
            return None
        entry = next(e for e in self._entries if e.intent.id == found.intent.id)
        return FaqChoice(found.intent, "phrases") if asked <= entry.vocabulary else None

    def _whole_phrase(self, text: str) -> FaqChoice | None:
        """An intent whose phrases or patterns are the whole message ("refunds?", "where is
        my order"): the generic question its canned answer was written for."""
        normalised = normalize(text)
        for entry in self._entries:
            remaining = f" {normalised} "
            for pattern in entry.intent.patterns:
                remaining = pattern.sub(" ", remaining)
            for phrase in entry.intent.phrases:
                remaining = remaining.replace(f" {phrase} ", " ")
            if remaining.strip() != normalised and all(
                word in STOPWORDS for word in remaining.split()
            ):
                return FaqChoice(entry.intent, "phrases")
        return None

    def best_similarity(self, vector: Sequence[float] | None) -> float:
        """How close `vector` is to any FAQ question (0 without embeddings)."""
        if vector is None:
            return 0.0
        return max(
            (cosine(vector, v) for e in self._entries for v in e.vectors),
            default=0.0,
        )
