"""Precision and recall of a FAQ on labelled phrasings, for tests and benchmarks.

A case is a message and the intent that should answer it (None: the FAQ should stay out
of it and let the LLM answer). A FAQ answer to the wrong intent, or to a message that
should have gone to the LLM, costs precision; a missed intent costs recall. Precision is
what users notice most: a confidently wrong canned answer is worse than an LLM answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tidings.responder.faq.matcher import FaqMatcher


@dataclass(frozen=True)
class Case:
    text: str
    intent: str | None


@dataclass(frozen=True)
class Scores:
    """Counts and ratios over a labelled set, with the misses for inspection."""

    cases: int
    true_positives: int
    false_positives: int
    false_negatives: int
    mistakes: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        answered = self.true_positives + self.false_positives
        return self.true_positives / answered if answered else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0


def evaluate(matcher: FaqMatcher, cases: Iterable[Case]) -> Scores:
    """Score `matcher` on `cases`; `mistakes` lists (text, expected, got)."""
    tp = fp = fn = total = 0
    mistakes: list[tuple[str, str | None, str | None]] = []
    for case in cases:
        total += 1
        found = matcher.match(case.text)
        got = found.intent.id if found else None
        if got == case.intent:
            tp += got is not None
            continue
        if got is not None:
            fp += 1
        if case.intent is not None:
            fn += 1
        mistakes.append((case.text, case.intent, got))
    return Scores(total, tp, fp, fn, mistakes)
