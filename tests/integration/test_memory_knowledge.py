"""Retrieval quality over the bundled sample knowledge base, with the real embedding model.

`data/memory_kb_questions.json` holds customer questions, each labelled with the chunk
(title path) that answers it. The sample is ingested into Qdrant local mode exactly as
`tidings ingest --sample` does; each question is searched as `GET /context` searches.
Target: the expected chunk is in the top 3 for at least 90% of the questions (hit@3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.memory.collection import ModelStamp
from tidings.memory.embedder import Embedder
from tidings.memory.knowledge.ingest import FileSource, Ingestor, sample_source
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.memory.store import Qdrant, open_qdrant

pytestmark = pytest.mark.integration

QUESTIONS = Path(__file__).parent / "data" / "memory_kb_questions.json"


def labelled_questions() -> list[tuple[str, str]]:
    data = json.loads(QUESTIONS.read_text())
    return [(item["q"], item["expected"]) for item in data["questions"]]


async def test_sample_knowledge_base_retrieval_hit_at_3_and_mrr(
    embedder: Embedder, tmp_path: Path
) -> None:
    questions = labelled_questions()
    assert len(questions) >= 40
    settings = MemorySettings()
    async with open_qdrant(QdrantSettings(path=tmp_path / "qdrant")) as qdrant:
        knowledge = KnowledgeStore(qdrant, "kb")
        await knowledge.ensure_collection(ModelStamp(embedder.name, embedder.dimension))
        source = sample_source()
        report = await Ingestor(
            knowledge,
            embedder,
            max_chars=settings.chunk_max_chars,
            overlap_chars=settings.chunk_overlap_chars,
        ).ingest(source.root, source.items())
        assert report.documents == 4 and not report.failed
        titles = {
            c.title
            for c in await knowledge.search([1.0] * embedder.dimension, limit=100, min_score=-1)
        }
        assert {expected for _, expected in questions} <= titles  # every label exists

        vectors = embedder.embed([q for q, _ in questions])
        ranks: list[int | None] = []
        for (_question, expected), vector in zip(questions, vectors, strict=True):
            found = await knowledge.search(vector, limit=10, min_score=-1)
            found_titles = [chunk.title for chunk in found]
            ranks.append(found_titles.index(expected) + 1 if expected in found_titles else None)

    hit_at_3 = sum(1 for r in ranks if r is not None and r <= 3) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    misses = [q for (q, _), r in zip(questions, ranks, strict=True) if r is None or r > 3]
    print(f"\nretrieval over the sample KB: hit@3={hit_at_3:.3f} MRR={mrr:.3f} n={len(ranks)}")
    assert hit_at_3 >= 0.9, f"hit@3={hit_at_3:.3f}, missed: {misses}"
    assert mrr >= 0.75


async def _ingested(
    qdrant: Qdrant, embedder: Embedder, name: str, *, lexical: bool
) -> KnowledgeStore:
    """The sample knowledge base ingested into `name`; `lexical` False: into a collection
    created as before the lexical index (no sparse vector)."""
    from tidings.memory.collection import create_collection, point_alias
    from tidings.memory.knowledge.store import PAYLOAD_INDEXES

    stamp = ModelStamp(embedder.name, embedder.dimension)
    if not lexical:
        await qdrant.run(
            create_collection, qdrant.client, f"{name}_old", stamp, PAYLOAD_INDEXES, local=True
        )
        await qdrant.run(point_alias, qdrant.client, name, f"{name}_old")
    knowledge = KnowledgeStore(qdrant, name)
    await knowledge.ensure_collection(stamp)
    settings = MemorySettings()
    source = sample_source()
    await Ingestor(
        knowledge,
        embedder,
        max_chars=settings.chunk_max_chars,
        overlap_chars=settings.chunk_overlap_chars,
    ).ingest(source.root, source.items())
    return knowledge


async def test_a_chunk_that_shares_the_questions_rare_word_is_found_by_it(
    embedder: Embedder, tmp_path: Path
) -> None:
    # Closer in meaning to the pages about delivery than to the list of payment methods,
    # the one chunk that says "cash" is not among the 10 closest by meaning.
    question = "can i pay cash to the delivery guy when the books arrive?"
    expected = "Payments and billing > Accepted payment methods"
    [vector] = embedder.embed([question])
    async with open_qdrant(QdrantSettings(path=tmp_path / "qdrant")) as qdrant:
        knowledge = await _ingested(qdrant, embedder, "kb", lexical=True)
        by_meaning = await knowledge.search(vector, limit=10, min_score=0.25)
        both = await knowledge.search(vector, limit=10, min_score=0.25, text=question)
    assert expected not in [c.title for c in by_meaning]
    assert expected in [c.title for c in both]
    # Every chunk found by meaning is still there, with its similarity as its score.
    scores = {c.chunk_id: c.score for c in both}
    for found in by_meaning:
        assert scores[found.chunk_id] == pytest.approx(found.score, abs=1e-5)
    assert [c.score for c in both] == sorted((c.score for c in both), reverse=True)


async def test_a_collection_from_before_the_lexical_index_is_searched_by_meaning(
    embedder: Embedder, tmp_path: Path
) -> None:
    question = "can i pay cash to the delivery guy when the books arrive?"
    [vector] = embedder.embed([question])
    async with open_qdrant(QdrantSettings(path=tmp_path / "qdrant")) as qdrant:
        knowledge = await _ingested(qdrant, embedder, "kb", lexical=False)
        assert not await knowledge.lexical()
        by_meaning = await knowledge.search(vector, limit=10, min_score=0.25)
        asked = await knowledge.search(vector, limit=10, min_score=0.25, text=question)
    assert by_meaning and [c.chunk_id for c in asked] == [c.chunk_id for c in by_meaning]


@pytest.mark.parametrize("own_pages", [False, True])
async def test_the_sample_gets_the_current_lexical_index_unless_the_collection_holds_more(
    embedder: Embedder, kafka_settings: KafkaSettings, tmp_path: Path, own_pages: bool
) -> None:
    """`make run`'s data folder from an older release: the memory service rebuilds the
    sample's collection with the current lexical index at start, but never one that also
    holds the user's own pages (those need `tidings ingest --recreate`)."""
    path = tmp_path / "qdrant"
    async with open_qdrant(QdrantSettings(path=path)) as qdrant:
        knowledge = await _ingested(qdrant, embedder, "kb", lexical=False)
        if own_pages:
            page = tmp_path / "hours.md"
            page.write_text("# Opening hours\n\nThe shop opens at 9 a.m. on weekdays.\n")
            source = FileSource.of(page)
            await Ingestor(knowledge, embedder, max_chars=800, overlap_chars=0).ingest(
                source.root, source.items()
            )
        chunks = await knowledge.count()
    settings = MemorySettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}memory",
        kafka=kafka_settings,
        qdrant=QdrantSettings(path=path, collection="turns"),
        knowledge_collection="kb",
        knowledge_sample=True,
    )
    async with MemoryService(settings, embedder=embedder):
        pass
    async with open_qdrant(QdrantSettings(path=path)) as qdrant:
        after = KnowledgeStore(qdrant, "kb")
        assert await after.lexical() is not own_pages
        assert await after.count() == chunks  # the same pages, nothing lost or doubled
        [vector] = embedder.embed(["can i pay cash to the delivery guy?"])
        found = await after.search(vector, limit=10, min_score=0.25, text="cash on delivery")
    assert found
