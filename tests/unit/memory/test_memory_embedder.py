"""The packaged all-MiniLM-L6-v2 model, loaded from disk (no network) once for this module."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tidings.memory.embedder import Embedder, EmbedderError, embed_async


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_have_384_dimensions_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.embed(["Where is my order?", "Do you sell gift cards?"])

    assert embedder.dimension == 384
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.isclose(math.sqrt(cosine(v, v)), 1.0, abs_tol=1e-4) for v in vectors)


def test_similar_questions_score_higher_than_unrelated_ones(embedder: Embedder) -> None:
    order, parcel, weather = embedder.embed(
        [
            "Where is my order? It has not arrived yet.",
            "My package still hasn't been delivered.",
            "The weather is sunny and warm today.",
        ]
    )

    assert cosine(order, parcel) > cosine(order, weather) + 0.2


async def test_async_embedding_matches_and_keeps_order(embedder: Embedder) -> None:
    texts = ["refund please", "what are your opening hours", "refund please"]

    vectors = await embed_async(embedder, texts)

    assert vectors == embedder.embed(texts)
    assert vectors[0] == vectors[2] != vectors[1]
    assert await embed_async(embedder, []) == []


def test_unknown_models_are_refused_instead_of_downloaded(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="never downloaded"):
        Embedder.load("sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(EmbedderError, match="never downloaded"):
        Embedder.load(str(tmp_path / "missing-model"))
