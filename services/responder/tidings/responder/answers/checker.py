"""The grounding check: does an answer say only what its sources say?

Every answer about the store is checked against the knowledge it cites before it is final
(or, while it streams, sentence by sentence before each sentence goes out). A sentence
passes when:

1. **Facts.** Every amount, percentage, number, e-mail address, URL and phone number in it
   appears in the sources (`facts.py`), and so does every number spelled as a word.
2. **Words.** Its content words (stemmed; function words and conversational words such as
   "help" or "sorry" aside) are the sources' words: at most `max_unsupported` of them
   (a share) may be missing. A policy the sources do not state ("we offer a student
   discount") needs words they do not have.
3. **Polarity.** It does not flip the source sentence it follows most closely: "gift cards
   can expire" against "gift cards ... never expire" fails.

The check cannot prove an answer right, only that it invents nothing these rules can see;
the engine therefore gives generated text only when it passes and quotes the source when
it does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tidings.common.sentences import split_sentences
from tidings.common.words import DISCOURSE, content_stems, negated, stem
from tidings.responder.answers.facts import facts, number_words

_DISCOURSE_STEMS = frozenset(stem(word) for word in DISCOURSE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: `ok`, or the problems found (for logs and metrics)."""

    ok: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _SourceSentence:
    text: str
    stems: frozenset[str]
    negated: bool


class GroundingChecker:
    """Checks text against a fixed set of source texts (the knowledge an answer cites)."""

    def __init__(
        self, sources: Iterable[str], *, max_unsupported: float = 0.15, allow: str = ""
    ) -> None:
        """`allow`: extra text whose words (not facts) may be used, e.g. the fallback."""
        self._max_unsupported = max_unsupported
        self._sentences: list[_SourceSentence] = []
        self._keys: dict[str, set[str]] = {}
        self._numbers: set[str] = set()
        self._number_words: set[str] = set()
        self._stems: set[str] = set(content_stems(allow))
        for source in sources:
            for fact in facts(source):
                self._keys.setdefault(fact.kind, set()).add(fact.key)
                if fact.kind in {"money", "percent", "number"}:
                    self._numbers.add(fact.key)
            self._number_words |= number_words(source)
            for sentence in split_sentences(source):
                stems = frozenset(content_stems(sentence))
                self._stems |= stems
                self._sentences.append(_SourceSentence(sentence, stems, negated(sentence)))

    def check(self, text: str) -> Verdict:
        """Check every sentence of `text`."""
        problems: list[str] = []
        for sentence in split_sentences(text):
            problems.extend(self.problems(sentence))
        return Verdict(not problems, tuple(problems))

    def problems(self, sentence: str) -> list[str]:
        """What is wrong with one sentence (empty: it passes)."""
        found: list[str] = []
        for fact in facts(sentence):
            if fact.kind in {"money", "percent"}:
                known = fact.key in self._keys.get(fact.kind, set())
            elif fact.kind == "number":
                known = fact.key in self._numbers
            else:
                known = fact.key in self._keys.get(fact.kind, set())
            if not known:
                found.append(f"{fact.kind} not in the sources: {fact.text!r}")
        for word in sorted(number_words(sentence) - self._number_words):
            found.append(f"number word not in the sources: {word!r}")
        stems = content_stems(sentence) - _DISCOURSE_STEMS
        unsupported = sorted(stems - self._stems)
        if stems and len(unsupported) > self._max_unsupported * len(stems):
            found.append(f"words not in the sources: {', '.join(unsupported)}")
        closest = self._closest(stems)
        if closest is not None and negated(sentence) != closest.negated:
            found.append(f"contradicts the source sentence {closest.text!r}")
        return found

    def _closest(self, stems: set[str]) -> _SourceSentence | None:
        """The source sentence sharing most content words (at least two) with `stems`."""
        best: _SourceSentence | None = None
        best_shared = 1
        for candidate in self._sentences:
            shared = len(stems & candidate.stems)
            if shared > best_shared:
                best, best_shared = candidate, shared
        return best
