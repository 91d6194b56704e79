"""Which canned answer a user gets for a given phrasing (the packaged bookstore FAQ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.responder.faq import FaqError, FaqMatcher, load_faq, normalize, parse_faq

SEED_ANSWERS = {
    "greeting": "Hello! I'm here to help. What can I assist you with today?",
    "order_status": "I can help you track your order. Please provide your order number.",
    "shipping": (
        "Standard shipping takes 5-7 business days. Express shipping is 2-3 business days."
    ),
    "returns": "We accept returns within 30 days. Books must be in original condition.",
    "payment": "We accept Visa, Mastercard, American Express, and PayPal.",
    "product_questions": "Check out our Fiction category for popular titles!",
    # Not in the seed: how a chat ends (the LLM answered these from the conversation).
    "thanks": "You're welcome! Is there anything else I can help you with?",
    "goodbye": (
        "Goodbye, and thanks for stopping by! If anything else comes up, just write again."
    ),
    "human": (
        "I'm the bookstore's chat assistant. To reach a person on our support team, please "
        "write to support@bookstore.com."
    ),
}
SEED_FALLBACK = "I'm not sure about that. Please contact support@bookstore.com for assistance."


@pytest.fixture(scope="module")
def faq() -> FaqMatcher:
    return load_faq()


PHRASINGS = [
    # greetings: only when the message is essentially a greeting
    ("Hi", "greeting"),
    ("hello!", "greeting"),
    ("Hey there", "greeting"),
    ("Good morning, team!", "greeting"),
    ("HELLO 👋", "greeting"),
    ("\uff28\uff49", "greeting"),  # full-width "Hi", folded by NFKC
    # order status
    ("Where is my order?", "order_status"),
    ("where's my order", "order_status"),
    ("Track order", "order_status"),
    ("I want to track my package", "order_status"),
    ("What's the status of my order?", "order_status"),
    ("Order status please", "order_status"),
    ("Hello, where is my order?", "order_status"),
    # shipping
    ("How long does shipping take?", "shipping"),
    ("What is the delivery time?", "shipping"),
    ("Do you deliver to Canada?", "shipping"),
    ("Shipping time to Berlin", "shipping"),
    # returns
    ("What is your return policy?", "returns"),
    ("hi, what is your return policy?", "returns"),
    ("How do I return a book?", "returns"),
    ("I want a refund", "returns"),
    # payment
    ("What payment methods do you accept?", "payment"),
    ("How to pay?", "payment"),
    ("Can I use my credit card?", "payment"),
    ("Do you take PayPal?", "payment"),
    ("Which cards do you accept?", "payment"),
    # product questions
    ("Can you give me a book recommendation?", "product_questions"),
    ("What should I read next?", "product_questions"),
    ("Show me your bestsellers", "product_questions"),
    ("Best sellers this week?", "product_questions"),
    # precedence: the longest (most specific) match wins
    ("Where is my order? I paid with PayPal", "order_status"),
    ("I want to return a book I bought with PayPal", "returns"),
    ("Would you recommend express shipping?", "shipping"),
    # how a chat ends: only when the message is nothing else
    ("thanks!", "thanks"),
    ("Thank you so much for your help", "thanks"),
    ("great, thx", "thanks"),
    ("ok bye", "goodbye"),
    ("thanks, bye!", "goodbye"),
    ("no thanks, that's all", "goodbye"),
    ("thanks, but where is my order?", "order_status"),
    ("Thanks for nothing, I want to return this book", "returns"),
    # asking for a person
    ("I want to speak to a human", "human"),
    ("can I talk to someone please", "human"),
    ("are you a real person or a bot?", None),  # a question about the bot: chit-chat
    # not covered: the LLM answers these
    ("Tell me a short story about a dragon", None),
    ("What is the capital of France?", None),
    ("This is the history of this shop", None),  # "hi" inside words
    ("Which chips do you like?", None),
    ("Thanks for the relationship advice", None),  # "ship" inside a word
    ("Hitchhiker's guide to the galaxy", None),
    ("hi, I have a question about my account", None),
    ("Can you help me write a poem?", None),
    ("", None),
    ("?!...", None),
]


@pytest.mark.parametrize(("text", "intent"), PHRASINGS)
def test_phrasing_gets_the_expected_answer(faq: FaqMatcher, text: str, intent: str | None) -> None:
    found = faq.match(text)
    if intent is None:
        assert found is None, f"{text!r} matched {found.intent.id if found else None}"
    else:
        assert found is not None, f"{text!r} matched nothing"
        assert found.intent.id == intent
        assert found.answer == SEED_ANSWERS[intent]


def test_packaged_faq_carries_the_seed_texts(faq: FaqMatcher) -> None:
    assert {intent.id: intent.answer for intent in faq.intents} == SEED_ANSWERS
    assert faq.fallback == SEED_FALLBACK


def test_normalize_drops_case_punctuation_and_apostrophes() -> None:
    assert normalize("  Where\u2019s   MY order?!  ") == "wheres my order"
    assert normalize("5-7 days") == "5 7 days"


def test_a_custom_faq_file_replaces_the_bookstore(tmp_path: Path) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(
        "fallback: Ask a human.\n"
        "intents:\n"
        "  - id: hours\n"
        "    answer: We are open 9 to 5.\n"
        "    phrases: [opening hours]\n"
        "    patterns: ['\\bwhen (?:are|do) you open\\b']\n",
        encoding="utf-8",
    )
    faq = load_faq(path)
    assert faq.fallback == "Ask a human."
    match = faq.match("When do you open on Sunday?")
    assert match is not None and match.answer == "We are open 9 to 5."
    assert faq.match("Where is my order?") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("intents: [", "invalid"),
        ("fallback: x\nintents: []\n", "intents"),
        ("fallback: x\nintents:\n  - id: a\n    answer: b\n    patterns: ['(']\n", "pattern"),
        (
            "fallback: x\nintents:\n  - {id: a, answer: b}\n  - {id: a, answer: c}\n",
            "duplicate",
        ),
    ],
)
def test_an_invalid_faq_file_is_refused_with_its_name(text: str, problem: str) -> None:
    with pytest.raises(FaqError, match=problem) as info:
        parse_faq(text, origin="/etc/faq.yaml")
    assert "/etc/faq.yaml" in str(info.value)
