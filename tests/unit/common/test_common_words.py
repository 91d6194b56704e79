"""The words the answer engine and the knowledge base's lexical index compare."""

from __future__ import annotations

from tidings.common.words import content_stems, content_words, stem


def test_irregular_forms_are_one_word_with_their_lemma() -> None:
    assert stem("wrote") == stem("write") == stem("writing")
    assert stem("paid") == stem("pay") == stem("paying")
    assert stem("sent") == stem("send")
    assert stem("returns") == stem("returned") == stem("returning")
    assert stem("unread") != stem("read")  # a different word, not a form of "read"


def test_a_hyphenated_word_also_counts_as_its_parts() -> None:
    assert {stem("next"), stem("day")} <= content_stems("next-day delivery")
    assert content_stems("next-day") & content_stems("next day delivery")
    assert content_stems("e-books") >= {stem("e-book"), stem("book")}
    assert content_stems("5-7 days") == {"5-7", stem("days")}  # number ranges stay whole


def test_content_words_keep_repeats_and_drop_function_words_and_negations() -> None:
    assert content_words("The book, the books and not a book") == [stem("book")] * 3
    assert content_stems("How many books do you have?") == {stem("book")}


def test_filler_is_a_function_word_in_any_form() -> None:
    assert content_stems("getting the label") == {stem("label")}
    assert content_stems("I was trying to guess how long it takes") == {stem("takes")}


def test_a_noun_in_ment_or_ery_is_its_verb() -> None:
    assert stem("payment") == stem("pay") == stem("paid")
    assert stem("delivery") == stem("deliver") == stem("delivered")
    assert stem("shipment") == stem("ship")
    assert stem("cement") == "cement"  # too short a root to cut


def test_contractions_and_chat_shorthand_are_function_words() -> None:
    assert content_stems("do u guys take Discover? it's the only card I've got") == {
        stem("take"),
        stem("discover"),
        stem("card"),
    }
    assert content_stems("they're pretty much perfect") == {stem("perfect")}
    assert content_stems("how long does shipping usually take?") == {stem("ship"), stem("take")}
    # A contraction of a content word is still that word.
    assert stem("store") in content_stems("the store's policy")


def test_an_abbreviation_is_the_words_it_stands_for() -> None:
    assert content_stems("ship to the UK") == content_stems("ship to the United Kingdom")
    assert content_stems("do you take amex") >= content_stems("American Express")
    assert content_stems("shipping within the U.S.") == content_stems(
        "shipping within the United States"
    )
    assert content_stems("can you send it to us") == {stem("send")}  # "us" is a pronoun
