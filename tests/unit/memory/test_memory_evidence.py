"""Sentence evidence for /context?evidence=true: splitting, scoring, the bounded cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tidings.common.memory_api import KnowledgeChunk
from tidings.memory.evidence import VectorCache, evidence_sentences, with_evidence


class Letters:
    """A fake embedder: one axis per first letter, so scores are predictable."""

    name = "letters"
    dimension = 26

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        vectors = []
        for text in texts:
            sentence = text.split("\n", 1)[-1]
            vector = [0.0] * 26
            vector[ord(sentence[0].lower()) - ord("a")] = 1.0
            vectors.append(vector)
        return vectors


def test_headings_and_fragments_are_not_evidence() -> None:
    text = "# Gift cards\n\nGift cards never expire. Use several.\n\n- Check the balance online."
    assert evidence_sentences(text) == ["Gift cards never expire.", "Check the balance online."]


def test_sentences_are_scored_against_the_query_and_embedded_once() -> None:
    chunk = KnowledgeChunk(
        chunk_id="c",
        text="Gift cards never expire. Balances are shown online.",
        title="Payments > Gift cards",
        source="kb",
        score=0.7,
    )
    embedder = Letters()
    cache = VectorCache()
    query = [0.0] * 26
    query[ord("g") - ord("a")] = 1.0
    [scored] = asyncio.run(with_evidence([chunk], query, embedder, cache))
    assert [(e.text, e.score) for e in scored.sentences] == [
        ("Gift cards never expire.", 1.0),
        ("Balances are shown online.", 0.0),
    ]
    asyncio.run(with_evidence([chunk], query, embedder, cache))
    assert len(embedder.calls) == 1  # the second query used the cache


def test_the_cache_drops_the_least_recently_used() -> None:
    cache = VectorCache(max_entries=2)
    cache.put("a", [1.0])
    cache.put("b", [1.0])
    assert cache.get("a") is not None
    cache.put("c", [1.0])
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
