"""The knowledge base's lexical index: each chunk's words as a Qdrant sparse vector (BM25).

Search by meaning alone misses a chunk whose words the question uses but whose embedding is
not among the closest: "can I pay cash to the delivery guy?" is closer in meaning to the
pages about delivery than to the one list that says "we do not accept cash on delivery".
So each chunk is also stored as a sparse vector of its words (`tidings.common.words`: the
same stems the answer engine compares), weighted by BM25's term-frequency saturation; the
collection's IDF modifier lets Qdrant weigh each word by how rare it is across the whole
knowledge base when a question is searched. The memory service returns the chunks found
either way (`KnowledgeStore.search`).

Word ids are the first 4 bytes of the stem's BLAKE2b digest: stable across processes and
versions, and collisions among a knowledge base's few thousand stems are rare and harmless
(two words share a weight).
"""

from __future__ import annotations

import hashlib
from collections import Counter

from qdrant_client import models

from tidings.common.words import content_words

# The named sparse vector of the knowledge collection. Its name carries the version of the
# words it holds: change it whenever `tidings.common.words` changes how a text becomes words
# (tests/unit/memory/test_memory_lexical.py pins them). A collection indexed with other
# words then lacks this vector and is searched by meaning only, with a warning to re-ingest,
# rather than by words that no longer match the questions'.
LEXICAL_VECTOR = "lexical_v2"
# BM25's term-frequency saturation: a word's weight grows with its count up to k1 + 1.
K1 = 1.2

SPARSE_VECTORS = {LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def word_id(stem: str) -> int:
    """A stable 32-bit id for a word stem."""
    return int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=4).digest(), "big")


def _vector(weights: dict[int, float]) -> models.SparseVector:
    ordered = sorted(weights.items())
    return models.SparseVector(
        indices=[index for index, _ in ordered], values=[value for _, value in ordered]
    )


def chunk_vector(title: str, text: str) -> models.SparseVector:
    """The sparse vector of a chunk: its heading path's words and its text's, BM25-weighted."""
    counts = Counter(content_words(f"{title}\n{text}"))
    weights: dict[int, float] = {}
    for stem, count in counts.items():
        index = word_id(stem)
        weights[index] = weights.get(index, 0.0) + count * (K1 + 1) / (count + K1)
    return _vector(weights)


def query_vector(text: str) -> models.SparseVector | None:
    """The sparse vector of a question (each word once), or None when it has no content word."""
    stems = set(content_words(text))
    if not stems:
        return None
    return _vector({word_id(stem): 1.0 for stem in stems})
