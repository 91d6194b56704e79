"""The kind of fact a question asks for (answers/expected.py)."""

from __future__ import annotations

import pytest

from tidings.responder.answers.expected import asked_kinds, gives


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How much is shipping to Australia?", {"money"}),
        ("next day delivery price?", {"money"}),
        ("How long do refunds take?", {"duration"}),
        ("How many days does express take?", {"duration"}),
        ("How many books do you have?", {"count"}),
        ("What's the cut-off time for same-day dispatch?", {"clock"}),
        ("Where do orders ship from?", {"place"}),
        ("where can I get an invoice", {"place"}),
        ("Do you ship to Canada?", set()),
        ("How much time do I have to return a book?", set()),
    ],
)
def test_question_words_tell_the_kind_of_fact_asked_for(question: str, kinds: set[str]) -> None:
    assert asked_kinds(question) == kinds


def test_a_sentence_gives_a_kind_when_it_states_such_a_fact() -> None:
    priced = "International orders take 7-14 business days with standard shipping ($14.99)."
    assert gives(priced, {"money"}) and gives(priced, {"duration"})
    assert not gives("We ship to Canada, Mexico and Australia.", {"money", "duration", "count"})
    assert gives("Orders placed before 2 p.m. Pacific time leave the same day.", {"clock"})
    assert gives("E-books are delivered instantly to your library.", {"duration"})
    assert not gives("We ship to Canada.", set())


def test_a_sentence_gives_a_place_when_it_names_one_after_a_preposition() -> None:
    assert gives("Every order ships from our warehouse in Portland, Oregon.", {"place"})
    assert gives("Download invoices under Orders in your account.", {"place"})
    # A capital that starts the sentence, or a place with no name, is not one.
    assert not gives("Books damaged in transit are replaced free of charge.", {"place"})
    assert not gives("Drop the parcel at any post office.", {"place"})
