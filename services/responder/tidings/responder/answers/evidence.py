"""Which sentences of the retrieved knowledge answer a question, and the quoted answer.

The memory service scores every sentence of the retrieved chunks against the question
(`GET /context?evidence=true`). Here each sentence also gets word scores: the share of the
question's content words that the sentence (or its headings) and its section use, each word
weighed by how rare it is among the candidates, and whether it states the kind of fact the
question asks for (`expected.py`). A question is answered from the knowledge base when its
best sentence is close enough in meaning *and* the question's words are the knowledge
base's words: a question about "student discounts" may be close to a sentence about prices,
but nothing in the knowledge base says "student".
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field, replace
from functools import lru_cache

from tidings.common.memory_api import KnowledgeChunk
from tidings.common.words import content_stems
from tidings.responder.answers.expected import asked_kinds, gives
from tidings.responder.answers.facts import facts

# A sentence that addresses the assistant is an instruction, not evidence about the store
# (prompt injection in a knowledge page): never quoted, never given to the model.
_INJECTION_MARKERS = (
    "ignore previous",
    "ignore all previous",
    "ignore your",
    "ignore the above",
    "disregard",
    "system prompt",
    "you are now",
    "as an ai",
    "assistant must",
    "assistants must",
    "the assistant",
    "language model",
    "jailbreak",
)


def looks_like_instruction(sentence: str) -> bool:
    """True for a sentence that tells an assistant what to do."""
    lowered = sentence.casefold()
    return any(marker in lowered for marker in _INJECTION_MARKERS)


@dataclass(frozen=True, slots=True)
class Finding:
    """One knowledge sentence with its scores and where it comes from."""

    text: str
    similarity: float
    coverage: float
    chunk: KnowledgeChunk
    position: int
    section_coverage: float = 0.0
    # The sentence states the kind of fact the question asks for (an amount, ...).
    typed: bool = False
    # Meaning of the sentence and of its section, the question's words they use, and
    # whether it gives the kind of fact asked for, weighed by `Weights`.
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Weights:
    """How a sentence's score adds up (its own similarity counts 1)."""

    section: float = 0.3
    coverage: float = 0.3
    section_coverage: float = 0.2
    typed: float = 0.1

    def score(self, finding: Finding) -> float:
        return (
            finding.similarity
            + self.section * finding.chunk.score
            + self.coverage * finding.coverage
            + self.section_coverage * finding.section_coverage
            + self.typed * finding.typed
        )


@dataclass(frozen=True, slots=True)
class EvidenceLimits:
    """When the knowledge base counts as answering (docs/responder.md: tuning)."""

    min_similarity: float = 0.4
    # The share of the question's words that the best sentence (or its headings) uses adds
    # this much: a close sentence that shares no word with the question is weak evidence.
    coverage_bonus: float = 0.2
    # Question words the retrieved knowledge never uses lower the confidence: each one
    # raises the similarity needed by this much.
    foreign_word_penalty: float = 0.05
    # At most this many foreign words count (a chatty message names many things the pages
    # need not: "my sister in Honolulu", "found it in a drawer").
    max_foreign_words: int = 3
    max_sentences: int = 3
    # Other sentences of the same section are quoted (up to `max_sentences`) when they score
    # within this of the best one (the answer is often in the sentence next to the closest).
    second_within: float = 0.25
    # Chunks retrieved for each question (by meaning, and as many again by words): the
    # candidates the sentences come from.
    chunks: int = 10
    # An answer whose best sentence clears the bar by less than this ends with the way to
    # ask a person (the FAQ fallback's contact); docs/responder.md says how often the right
    # and the wrong answers fall below it.
    sure_margin: float = 0.2
    # In a follow-up, the share of its own new words that a sentence uses adds this much.
    followup_words: float = 0.3
    weights: Weights = field(default_factory=Weights)


def _idf(documents: Sequence[Set[str]]) -> Callable[[str], float]:
    """BM25's inverse document frequency over `documents` (a word none uses scores highest)."""
    total = len(documents)
    counts: Counter[str] = Counter()
    for words in documents:
        counts.update(words)
    return lambda word: math.log(1 + (total - counts[word] + 0.5) / (counts[word] + 0.5))


def _weighted_share(asked: dict[str, float], words: Set[str]) -> float:
    """The share of the question's word weight that `words` cover."""
    whole = sum(asked.values())
    return sum(w for word, w in asked.items() if word in words) / whole if whole else 0.0


@lru_cache(maxsize=8192)
def _knowledge_words(text: str) -> frozenset[str]:
    """The content stems of a knowledge text (a chunk, its title, a sentence): the same
    texts come back question after question, so they are worked out once."""
    return frozenset(content_stems(text))


def spelled(asked: set[str], vocabulary: Set[str]) -> set[str]:
    """`asked` with each word the vocabulary lacks replaced by a close one it has, if any: a
    typo ("recieve", "adress") still finds the word. Short words are left alone ("prime" is
    not "price")."""
    known: list[str] | None = None
    found: set[str] = set()
    for word in asked:
        if word in vocabulary or len(word) < 6 or not word.isalpha():
            found.add(word)
            continue
        known = known if known is not None else sorted(vocabulary)
        close = [
            w for w in difflib.get_close_matches(word, known, n=3, cutoff=0.8) if w[:1] == word[:1]
        ]
        found.add(close[0] if close else word)
    return found


def findings(
    question: str, chunks: Sequence[KnowledgeChunk], weights: Weights | None = None
) -> list[Finding]:
    """Every evidence sentence of `chunks`, best first.

    The word scores weigh each question word by how rare it is among the candidates (BM25's
    IDF): "zealand" tells sentences apart, "book" hardly does.
    """
    kinds = asked_kinds(question)
    units: list[tuple[KnowledgeChunk, int, str, float, frozenset[str]]] = []
    sections: dict[str, frozenset[str]] = {}
    for chunk in chunks:
        heading = _knowledge_words(chunk.title)
        sections[chunk.chunk_id] = _knowledge_words(chunk.text) | heading
        for position, sentence in enumerate(chunk.sentences):
            if looks_like_instruction(sentence.text):
                continue
            words = _knowledge_words(sentence.text) | heading
            units.append((chunk, position, sentence.text, sentence.score, words))
    asked_words = spelled(content_stems(question), set().union(*sections.values()))
    sentence_idf = _idf([words for *_, words in units])
    section_idf = _idf(list(sections.values()))
    by_sentence = {word: sentence_idf(word) for word in asked_words}
    by_section = {word: section_idf(word) for word in asked_words}
    found = [
        Finding(
            text,
            similarity,
            _weighted_share(by_sentence, words),
            chunk,
            position,
            _weighted_share(by_section, sections[chunk.chunk_id]),
            gives(text, kinds),
        )
        for chunk, position, text, similarity, words in units
    ]
    weights = weights or Weights()
    scored = [replace(f, score=weights.score(f)) for f in found]
    return sorted(scored, key=lambda f: f.score, reverse=True)


def foreign_words(question: str, chunks: Sequence[KnowledgeChunk]) -> set[str]:
    """The question's content stems that no retrieved chunk (text or heading) uses."""
    known: set[str] = set()
    for chunk in chunks:
        known |= _knowledge_words(chunk.text) | _knowledge_words(chunk.title)
    return spelled(content_stems(question), known) - known


@dataclass(frozen=True, slots=True)
class Assessment:
    """The sentences that answer a question, and by how much they cleared the bar."""

    chosen: list[Finding]
    margin: float

    def sure(self, limits: EvidenceLimits) -> bool:
        """Clear enough to give without a way to ask a person (`EvidenceLimits.sure_margin`)."""
        return self.margin >= limits.sure_margin


# Without facts, a sentence whose content words were this share of the previous answer's
# was said already; with facts, all of them stated and this share of its words
# ("Standard shipping takes 5-7 business days within the United States." after "Standard
# shipping takes 5-7 business days.").
REPEAT_SHARE = 0.8
SAME_TOPIC = 0.5


@dataclass(frozen=True, slots=True)
class Said:
    """A follow-up's conversation: the words the follow-up itself adds ("and if I send it
    to the UK instead?": "send", "united", "kingdom"), and what the previous answer said."""

    new_words: frozenset[str]
    # The last answer's content stems and the keys of the facts it stated.
    words: frozenset[str]
    stated: frozenset[str]

    def repeats(self, finding: Finding) -> bool:
        """True when the sentence was said already and names none of the new words: it
        does not answer what the follow-up asks ("what about Germany?" after the US
        delivery times is not answered by the US delivery times again).

        Said already: its facts (amounts, numbers, ...) were all stated, in a sentence
        about the same things; or, without facts, nearly all its words were."""
        words = _knowledge_words(finding.text)
        if not words or words & self.new_words:
            return False
        share = len(words & self.words) / len(words)
        stated = {fact.key for fact in facts(finding.text)}
        if stated:
            return stated <= self.stated and share >= SAME_TOPIC
        return share >= REPEAT_SHARE

    def rerank(self, ranked: list[Finding], weight: float) -> list[Finding]:
        """The follow-up's own words weigh as much again as the whole question's: "will
        the person who bought it find out?" after "I want to return a gift" is answered by
        the sentence about the buyer, not by another about returns."""
        if not self.new_words or weight <= 0:
            return ranked
        scored = [replace(f, score=f.score + weight * self.uses_new(f)) for f in ranked]
        return sorted(scored, key=lambda f: f.score, reverse=True)

    def uses_new(self, finding: Finding) -> float:
        """The share of the follow-up's new words that the sentence or its headings use."""
        words = _knowledge_words(finding.text) | _knowledge_words(finding.chunk.title)
        return len(words & self.new_words) / len(self.new_words)


def followup_said(previous_answer: str, followup: str, previous_question: str) -> Said | None:
    """What a follow-up must not simply be answered with again, or None (no answer known)."""
    if not previous_answer.strip():
        return None
    new = content_stems(followup) - content_stems(previous_question)
    return Said(
        frozenset(new),
        frozenset(content_stems(previous_answer)),
        frozenset(fact.key for fact in facts(previous_answer)),
    )


def assess(
    question: str,
    chunks: Sequence[KnowledgeChunk],
    limits: EvidenceLimits,
    *,
    said: Said | None = None,
) -> Assessment | None:
    """The sentences that answer `question` (in reading order) and the margin by which the
    best one cleared `min_similarity` (with its word bonus and foreign-word penalty), or
    None when the knowledge base does not answer it. For a follow-up, `said`: the previous
    answer's sentences are not its answer again unless they name what the follow-up adds."""
    ranked = findings(question, chunks, limits.weights)
    if said is not None:
        ranked = said.rerank([f for f in ranked if not said.repeats(f)], limits.followup_words)
    if not ranked:
        return None
    best = ranked[0]
    needed = limits.min_similarity + limits.foreign_word_penalty * min(
        len(foreign_words(question, chunks)), limits.max_foreign_words
    )
    margin = best.similarity + limits.coverage_bonus * best.coverage - needed
    if margin < 0:
        return None
    chosen = [best]
    for other in ranked[1:]:
        if len(chosen) >= limits.max_sentences:
            break
        if other.chunk.chunk_id == best.chunk.chunk_id and (
            other.score >= best.score - limits.second_within
        ):
            chosen.append(other)
    return Assessment(sorted(chosen, key=lambda f: f.position), round(margin, 4))


def answering(
    question: str, chunks: Sequence[KnowledgeChunk], limits: EvidenceLimits
) -> list[Finding]:
    """The sentences that answer `question` (in reading order), or [] when the knowledge
    base does not answer it."""
    found = assess(question, chunks, limits)
    return found.chosen if found is not None else []


CITATION_OPENING = "(From our help page: "
_CITATION = re.compile(r"\n*^\(From our help page: [^\n]*\)[ \t]*$", re.MULTILINE)


def quote(chosen: Sequence[Finding]) -> str:
    """The quoted answer: the sentences as the knowledge base says them, and where from."""
    text = " ".join(f.text for f in chosen)
    title = chosen[0].chunk.title
    return f"{text}\n\n{CITATION_OPENING}{title}.)"


def without_citation(answer: str) -> str:
    """A quoted answer without its "(From our help page: ...)" line."""
    return _CITATION.sub("", answer)
