"""Which sentences of the retrieved knowledge answer a question, and the quoted answer.

The memory service scores every sentence of the retrieved chunks against the question
(`GET /context?evidence=true`). Here each sentence also gets a word score: the share of the
question's content words that the sentence or its headings use. A question is answered
from the knowledge base when its best sentence is close enough in meaning *and* the
question's words are the knowledge base's words: a question about "student discounts" may
be close to a sentence about prices, but nothing in the knowledge base says "student".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tidings.common.memory_api import KnowledgeChunk
from tidings.responder.answers.text import content_stems

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

    @property
    def score(self) -> float:
        """Meaning of the sentence, of its section, and the question's words it uses."""
        return self.similarity + SECTION_WEIGHT * self.chunk.score + COVERAGE_WEIGHT * self.coverage


COVERAGE_WEIGHT = 0.3
SECTION_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class EvidenceLimits:
    """When the knowledge base counts as answering (docs/responder.md: tuning)."""

    min_similarity: float = 0.4
    # The share of the question's words that the best sentence (or its headings) uses adds
    # this much: a close sentence that shares no word with the question is weak evidence.
    coverage_bonus: float = 0.2
    # Question words the retrieved knowledge never uses lower the confidence: each one
    # raises the similarity needed by this much.
    foreign_word_penalty: float = 0.04
    max_sentences: int = 2
    # A second sentence of the same section is quoted when it scores within this of the
    # best one (the answer is often in the sentence next to the closest one).
    second_within: float = 0.25


def findings(question: str, chunks: Sequence[KnowledgeChunk]) -> list[Finding]:
    """Every evidence sentence of `chunks`, best first."""
    asked = content_stems(question)
    found: list[Finding] = []
    for chunk in chunks:
        heading = content_stems(chunk.title)
        for position, sentence in enumerate(chunk.sentences):
            if looks_like_instruction(sentence.text):
                continue
            words = content_stems(sentence.text) | heading
            coverage = len(asked & words) / len(asked) if asked else 0.0
            found.append(Finding(sentence.text, sentence.score, coverage, chunk, position))
    return sorted(found, key=lambda f: f.score, reverse=True)


def foreign_words(question: str, chunks: Sequence[KnowledgeChunk]) -> set[str]:
    """The question's content stems that no retrieved chunk (text or heading) uses."""
    known: set[str] = set()
    for chunk in chunks:
        known |= content_stems(chunk.text) | content_stems(chunk.title)
    return content_stems(question) - known


def answering(
    question: str, chunks: Sequence[KnowledgeChunk], limits: EvidenceLimits
) -> list[Finding]:
    """The sentences that answer `question` (best first), or [] when the knowledge base
    does not answer it."""
    ranked = findings(question, chunks)
    if not ranked:
        return []
    best = ranked[0]
    needed = limits.min_similarity + limits.foreign_word_penalty * len(
        foreign_words(question, chunks)
    )
    if best.similarity + limits.coverage_bonus * best.coverage < needed:
        return []
    chosen = [best]
    for other in ranked[1:]:
        if len(chosen) >= limits.max_sentences:
            break
        if other.chunk.chunk_id == best.chunk.chunk_id and (
            other.score >= best.score - limits.second_within
        ):
            chosen.append(other)
    return sorted(chosen, key=lambda f: f.position)


def quote(chosen: Sequence[Finding]) -> str:
    """The quoted answer: the sentences as the knowledge base says them, and where from."""
    text = " ".join(f.text for f in chosen)
    title = chosen[0].chunk.title
    return f"{text}\n\n(From our help page: {title}.)"
