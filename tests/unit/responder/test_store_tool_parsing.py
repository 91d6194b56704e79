"""What the store's tools read in a message: order numbers, e-mails, status questions, and
the constraints of a book request (pure functions)."""

from __future__ import annotations

import pytest

from tidings.responder.tools.book_request import (
    BookRequest,
    parse_book_request,
    parse_refinement,
)
from tidings.responder.tools.order_text import (
    asks_order_status,
    find_email,
    find_order_number,
    find_wrong_order_number,
)


@pytest.mark.parametrize(
    ("text", "expected", "number"),
    [
        ("Where is order #123456?", False, "123456"),
        ("status of order 654321 please", False, "654321"),
        ("order#111222", False, "111222"),
        ("123456", False, "123456"),
        ("it's 123456, ada@example.com", False, "123456"),
        ("my zip code is 123456", False, None),
        ("my zip code is 123456", True, "123456"),
        ("my phone is 1234567", True, None),
        ("order 12345", False, None),
        ("ref A123456", False, None),
        ("call 555-123456", False, None),
    ],
)
def test_order_numbers(text: str, expected: bool, number: str | None) -> None:
    assert find_order_number(text, expected=expected) == number


@pytest.mark.parametrize(
    ("text", "expected", "wrong"),
    [
        ("Where is my order 10042?", False, "10042"),
        ("where is order #12345", False, "12345"),
        ("order no. 1234567 hasn't arrived", False, "1234567"),
        ("my order number is: 99", False, None),  # too short to be given as one
        ("10042", True, "10042"),  # the bot asked for the number
        ("it's 1234567, ada@example.com", True, "1234567"),
        ("Where is my order #123456?", False, None),  # a real one
        ("Where is my order from 2025?", False, None),
        ("I ordered 3 books, where is my order?", False, None),
        ("my zip code is 90210, where is my order?", False, None),
        ("I paid $10042 for order #123456", False, None),
        ("ada12345@example.com", True, None),
    ],
)
def test_numbers_given_as_an_order_number_that_cannot_be_one(
    text: str, expected: bool, wrong: str | None
) -> None:
    assert find_wrong_order_number(text, expected=expected) == wrong


def test_emails() -> None:
    assert find_email("it is Ada.L@Example.co.uk, thanks") == "Ada.L@Example.co.uk"
    assert find_email("no address @ here") is None


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Where is my order?", True),
        ("Has my package shipped yet?", True),
        ("When will my order arrive?", True),
        ("order status", True),
        ("How do I cancel my order?", False),
        ("I want to return my order", False),
        ("How long does shipping take?", False),
        ("Do you ship orders to Canada?", False),
        ("has my order been sent yet?", True),
        # A request about delivering it, not a question about where it is.
        ("Could I have my order sent to a PO box in London?", False),
    ],
)
def test_status_questions(text: str, asks: bool) -> None:
    assert asks_order_status(text) is asks


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            "Recommend a mystery under $15",
            BookRequest(category="Mystery & Thriller", max_price=15.0),
        ),
        ("something like Dune", BookRequest(like="Dune")),
        ("I loved “The Hobbit”, what should I read next?", BookRequest(like="The Hobbit")),
        ("we really enjoyed Dune, anything similar?", BookRequest(like="Dune")),
        ("a cookbook for beginners", BookRequest(category="Cooking")),
        ("what are your bestsellers?", BookRequest(bestsellers=True)),
        ("what are your top sellers?", BookRequest(bestsellers=True)),
        ("Do you have books by Agatha Christie?", BookRequest(author="Agatha Christie")),
        ("any books by May Sarton?", BookRequest(author="May Sarton")),
        ("recommend a thriller I can get by Friday", BookRequest(category="Mystery & Thriller")),
        (
            "suggest a romance between $10 and 20 dollars as an e-book",
            BookRequest(category="Romance", min_price=10.0, max_price=20.0, format="ebook"),
        ),
        (
            "any sci-fi audiobooks over $20?",
            BookRequest(category="Science Fiction & Fantasy", min_price=20.0, format="audiobook"),
        ),
        ("recommend some historical fiction", BookRequest(category="History")),
        ("a picture book for my 4 year old", BookRequest(category="Children's Books")),
    ],
)
def test_book_requests(text: str, wanted: BookRequest) -> None:
    parsed = parse_book_request(text)
    assert parsed is not None
    for key in ("category", "author", "min_price", "max_price", "format", "like", "bestsellers"):
        assert getattr(parsed, key) == getattr(wanted, key), key


@pytest.mark.parametrize(
    "text",
    [
        "What is your return policy?",
        "Do you sell e-books?",
        "Where is my order?",
        "How much is shipping for orders under $35?",
        "I would like to return a book",
        "Write a haiku about autumn",
        # About the list, not asking for its books.
        "How often is the top sellers list updated?",
        # "by mistake" names no author.
        "I bought the wrong book by mistake, can I cancel the order?",
        # Nor does a deadline.
        "Can I get next day delivery to Honolulu? I need the book by Friday",
        "will the books by tomorrow be possible if I order express?",
        "I need the book by the 12th, which shipping should I pick?",
        # A taste, said about an order, asks for no book.
        "I loved the book but it arrived damaged, can I get a replacement?",
        "I really enjoyed the book, how do I leave a review?",
        "something like this but delivered faster?",
    ],
)
def test_messages_that_ask_for_no_book(text: str) -> None:
    assert parse_book_request(text) is None


def test_the_constraints_in_words() -> None:
    request = BookRequest(category="Mystery & Thriller", max_price=15.0, format="ebook")
    assert request.describe() == "Mystery & Thriller, up to $15.00, e-book"


MYSTERY = BookRequest(category="Mystery & Thriller", topic="recommend a mystery")


@pytest.mark.parametrize(
    ("text", "max_price", "book_format", "other_books"),
    [
        ("anything cheaper?", 15.98, None, True),  # below the cheapest shown
        ("something cheaper please", 15.98, None, True),
        ("any others?", None, None, True),
        ("anything else?", None, None, True),
        ("show me more", None, None, True),
        ("in paperback?", None, "paperback", False),
        ("under $10?", 10.0, None, False),
        ("cheaper ones in hardcover?", 15.98, "hardcover", True),
    ],
)
def test_follow_ups_to_suggestions(
    text: str, max_price: float | None, book_format: str | None, other_books: bool
) -> None:
    found = parse_refinement(MYSTERY, text, [15.99, 16.99, 21.99])
    assert found is not None
    assert found.request.category == "Mystery & Thriller"
    assert (found.request.max_price, found.request.format) == (max_price, book_format)
    assert found.other_books == other_books


@pytest.mark.parametrize(
    "text",
    [
        "can I return it?",
        "any other payment options?",
        "do you have other stores?",
        "what else can you do?",
        "thanks!",
        "is it in stock?",
        "how long would shipping take for the cheaper one to Canada, roughly?",
    ],
)
def test_messages_after_suggestions_that_ask_for_no_other_books(text: str) -> None:
    assert parse_refinement(MYSTERY, text, [15.99, 16.99, 21.99]) is None
