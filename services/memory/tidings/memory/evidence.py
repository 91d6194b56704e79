"""Sentence-level evidence for `GET /context?evidence=true`.

The responder answers questions about the store from the sentences of the knowledge base,
so it needs to know which sentences of the retrieved chunks answer the question, not only
which chunks are close. Each sentence is embedded with its chunk's heading path (the same
way chunks are embedded) and scored against the query vector. Knowledge sentences repeat
from query to query, so their vectors are kept in a bounded LRU cache: after the first few
questions scoring costs no model call at all.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence

from tidings.common.memory_api import Evidence, KnowledgeChunk
from tidings.common.sentences import split_sentences
from tidings.memory.embedder import TextEmbedder, embed_async

# Headings and fragments left by the splitter ("Delivery times") are not evidence.
_MIN_WORDS = 3


class VectorCache:
    """Text -> unit vector, least recently used dropped past `max_entries`.

    Vectors are kept as 32-bit float arrays (1.5 KiB for MiniLM's 384 dimensions, against
    about 12 KiB as a list of Python floats): 20,000 sentences take about 35 MiB.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self._max = max_entries
        self._vectors: OrderedDict[str, array[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> array[float] | None:
        found = self._vectors.get(text)
        if found is not None:
            self._vectors.move_to_end(text)
        return found

    def put(self, text: str, vector: Sequence[float]) -> None:
        self._vectors[text] = array("f", vector)
        self._vectors.move_to_end(text)
        while len(self._vectors) > self._max:
            self._vectors.popitem(last=False)


def evidence_sentences(chunk_text: str) -> list[str]:
    """The sentences of a chunk that can carry a fact (not headings or fragments)."""
    return [s for s in split_sentences(chunk_text) if len(s.split()) >= _MIN_WORDS]


def _embedding_text(title: str, sentence: str) -> str:
    return f"{title}\n{sentence}"


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))


async def with_evidence(
    chunks: Sequence[KnowledgeChunk],
    query_vector: Sequence[float],
    embedder: TextEmbedder,
    cache: VectorCache,
) -> list[KnowledgeChunk]:
    """`chunks` with each sentence scored against `query_vector` (cosine, unit vectors)."""
    per_chunk = [(chunk, evidence_sentences(chunk.text)) for chunk in chunks]
    missing: list[str] = []
    for chunk, sentences in per_chunk:
        for sentence in sentences:
            key = _embedding_text(chunk.title, sentence)
            if cache.get(key) is None and key not in missing:
                missing.append(key)
    if missing:
        for key, vector in zip(missing, await embed_async(embedder, missing), strict=True):
            cache.put(key, vector)
    scored: list[KnowledgeChunk] = []
    for chunk, sentences in per_chunk:
        evidence = []
        for sentence in sentences:
            found = cache.get(_embedding_text(chunk.title, sentence))
            score = 0.0 if found is None else _dot(found, query_vector)
            evidence.append(Evidence(text=sentence, score=round(score, 4)))
        scored.append(chunk.model_copy(update={"sentences": evidence}))
    return scored
