"""The knowledge base's lexical index: chunks and questions as sparse vectors."""

from __future__ import annotations

from tidings.common.words import stem
from tidings.memory.knowledge.lexical import K1, chunk_vector, query_vector, word_id


def test_a_chunks_words_are_weighted_by_saturated_counts() -> None:
    vector = chunk_vector("Payments > Accepted methods", "We accept cash. Cash only, cash!")
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert vector.indices == sorted(vector.indices)
    cash = weights[word_id(stem("cash"))]
    assert cash == 3 * (K1 + 1) / (3 + K1)  # three times, saturating below K1 + 1
    assert weights[word_id(stem("payments"))] == 1.0  # the heading counts once
    assert word_id(stem("we")) not in weights  # function words are not indexed


def test_a_question_is_its_words_once_and_nothing_without_content_words() -> None:
    vector = query_vector("Cash? Can I pay cash?")
    assert vector is not None
    assert sorted(vector.indices) == sorted({word_id(stem("cash")), word_id(stem("pay"))})
    assert set(vector.values) == {1.0}
    assert query_vector("can you do it?") is None


def test_word_ids_are_stable_across_processes() -> None:
    # BLAKE2b, not Python's per-process salted hash(): an index written by one process is
    # searched by another.
    assert word_id("cash") == 0xBFC61761
    assert 0 <= word_id("zealand") < 2**32


def test_the_indexed_words_are_those_the_vector_name_promises() -> None:
    from tidings.common.words import content_words
    from tidings.memory.knowledge.lexical import LEXICAL_VECTOR

    text = (
        "Payments: we don't accept cash-on-delivery; the e-books you bought are delivered "
        "instantly. Getting a refund takes 5-7 days. We've got pretty quick couriers to the UK."
    )
    # If this changes, the knowledge collections indexed so far hold other words than the
    # questions will: change LEXICAL_VECTOR's version with it (lexical.py).
    # v2: contractions of function words and chat shorthand are function words too, and an
    # abbreviation is the words it stands for.
    assert LEXICAL_VECTOR == "lexical_v2"
    assert content_words(text) == [
        "pay", "accept", "cashondeliv", "cash", "deliv", "ebook", "book", "buy", "deliv",
        "instant", "refund", "take", "5-7", "day", "quick", "courier", "unit", "kingdom",
    ]  # fmt: skip
