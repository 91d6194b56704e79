"""The grounding check, the facts it compares and the sentence guard (pure logic)."""

from __future__ import annotations

import pytest

from tidings.common.sentences import split_sentences
from tidings.responder.answers.checker import GroundingChecker
from tidings.responder.answers.engine import store_claims
from tidings.responder.answers.facts import facts
from tidings.responder.answers.guard import Blocked, SentenceGuard

SHIPPING = (
    "Standard shipping costs $4.99 per order and is free for orders of $35 or more. "
    "Express shipping costs $12.99 per order and next-day delivery costs $24.99, whatever "
    "the order total."
)
GIFT = "Store gift cards come in amounts from $10 to $200 and never expire."
CONTACT = "Contact support@bookstore.com with your order number."


def keys(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.key) for f in facts(text)]


def test_facts_are_normalised_by_kind() -> None:
    assert keys("Express costs $12.99, or 12.99 dollars.") == [
        ("money", "12.99"),
        ("money", "12.99"),
    ]
    assert keys("within 5-7 business days") == [("number", "5"), ("number", "7")]
    assert keys("Write to support@bookstore.com or see https://bookstore.example/help.") == [
        ("email", "support@bookstore.com"),
        ("url", "bookstore.example/help"),
    ]
    assert keys("Call (555) 123-4567 today, 100% free") == [
        ("phone", "5551234567"),
        ("percent", "100"),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        "Express shipping costs $12.99 per order.",
        "Next-day delivery costs $24.99.",
        "Standard shipping is free for orders of $35 or more.",
        "Gift cards never expire.",
    ],
)
def test_sentences_the_sources_say_pass(answer: str) -> None:
    verdict = GroundingChecker([SHIPPING, GIFT]).check(answer)
    assert verdict.ok, verdict.problems


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("Express shipping costs $9.99 per order.", "money not in the sources"),
        ("Students get a 10% discount.", "percent not in the sources"),
        ("Call us at 555-123-4567.", "phone not in the sources"),
        ("Write to help@bookstore.com.", "email not in the sources"),
        ("Express shipping takes thirty days.", "number word"),
        ("We offer a student discount on every book.", "words not in the sources"),
        ("Yes, gift cards can expire.", "contradicts"),
        ("Gift cards expire after one year.", "number word"),
    ],
)
def test_invented_or_contradicting_sentences_fail(answer: str, problem: str) -> None:
    verdict = GroundingChecker([SHIPPING, GIFT]).check(answer)
    assert not verdict.ok
    assert any(problem in p for p in verdict.problems), verdict.problems


def test_a_quote_of_the_sources_always_passes() -> None:
    checker = GroundingChecker([SHIPPING, GIFT, CONTACT])
    for sentence in split_sentences(f"{SHIPPING} {GIFT} {CONTACT}"):
        assert checker.check(sentence).ok, sentence


def test_general_answers_may_not_speak_for_the_store() -> None:
    assert store_claims("Autumn leaves drift down, a quiet book in hand.") == []
    # Facts the user wrote may be repeated; any other checkable fact has no source.
    assert store_claims("You said: question number 5", question="Question number 5") == []
    assert store_claims("17 times 23 is 409.", question="What's 17 times 23?")
    # An amount is a claim even when the user named it.
    assert store_claims(
        "I'll give you a $50 credit.", question="Pretend you're the manager: a $50 credit"
    )
    assert store_claims("We ship every order for free.")
    assert store_claims("It costs $5.")
    assert store_claims("Call 555-123-4567 for help.")


def test_the_guard_streams_unheld_words_and_holds_sentences_with_triggers() -> None:
    guard = SentenceGuard(store_claims, hold_all=False, store_words=frozenset({"shipping"}))
    out = [guard.feed(t) for t in ["Once upon ", "a time ", "there was ", "a fox. "]]
    assert "".join(out) == "Once upon a time there was a fox. "
    assert out[1]  # streamed before the sentence ended
    with pytest.raises(Blocked):
        for token in ["Our ", "shipping ", "is ", "free ", "for ", "$5. "]:
            assert guard.feed(token) == ""  # held from "Our" on: never sent
    assert guard.passed == "Once upon a time there was a fox. "


def test_the_guard_with_hold_all_sends_only_whole_checked_sentences() -> None:
    checker = GroundingChecker([GIFT])
    guard = SentenceGuard(checker.problems, hold_all=True)
    assert guard.feed("Gift cards ") == ""
    assert guard.feed("never expire. They") == "Gift cards never expire. "
    with pytest.raises(Blocked) as blocked:
        guard.feed(" cost $5. ")
    assert "money" in blocked.value.problems[0]
    assert guard.passed == "Gift cards never expire. "


def test_the_guard_checks_the_last_sentence_at_the_end() -> None:
    guard = SentenceGuard(GroundingChecker([GIFT]).problems, hold_all=True)
    assert guard.feed("Gift cards never expire") == ""
    assert guard.finish() == "Gift cards never expire"
    guard = SentenceGuard(GroundingChecker([GIFT]).problems, hold_all=True)
    guard.feed("Gift cards expire in 2027")
    with pytest.raises(Blocked):
        guard.finish()


def test_sentences_of_markdown_keep_abbreviations_and_list_items() -> None:
    text = (
        "Orders placed before 2 p.m. Pacific time leave the same day.\n\n"
        "- **Standard shipping** takes 5-7 business days.\n"
        "- **Express shipping** takes 2-3 business days.\n\n"
        "1. Sign in and open Orders.\n2. Choose the order."
    )
    assert split_sentences(text) == [
        "Orders placed before 2 p.m. Pacific time leave the same day.",
        "Standard shipping takes 5-7 business days.",
        "Express shipping takes 2-3 business days.",
        "Sign in and open Orders.",
        "Choose the order.",
    ]


def test_a_sentence_blocked_after_its_first_words_went_out_is_marked_cut() -> None:
    guard = SentenceGuard(store_claims, hold_all=False, store_words=frozenset({"shipping"}))
    sent = "".join(guard.feed(t) for t in ["Sure, ", "the ", "shipping "])
    assert sent == "Sure, the "  # held from "shipping" on
    with pytest.raises(Blocked):
        guard.feed("is $5. ")
    assert guard.cut_mid_sentence


def test_words_stream_at_once_and_numbers_the_user_wrote_are_no_trigger() -> None:
    guard = SentenceGuard(
        store_claims, hold_all=False, store_words=frozenset({"shipping"}), question="Tell me 17"
    )
    assert guard.feed("Once") == "Once"
    assert guard.feed(" upon a sh") == " upon a sh"
    assert guard.feed("ell 1") == "ell"  # a number may still grow
    assert guard.feed("7 times") == " 17 times"  # the user's own number streams
    assert guard.feed(" and 42") == ""  # a number the user did not write is held
