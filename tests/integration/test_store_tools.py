"""The store's tools through the whole stack (issue 19).

The bookstore backend runs as its own process (`tidings store`) with its SQLite database;
the real broker, the memory service (the packaged embedding model), the real responder and
the gateway over HTTP/SSE run in this process. Every answer is checked against the store's
database: the order's real status and tracking number, and recommended books that exist
and meet every constraint.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from httpx_sse import aconnect_sse
from sqlalchemy import select

from tests.store_process import StoreProcess
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings
from tidings.store.models import Book, Order

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "store-tools-test-secret-long-enough-for-hs256"
_LINK = re.compile(
    r"^- \[(?P<title>[^\]]+)\]\((?P<url>[^)]+)\) by (?P<author>.+?), \$(?P<price>[\d.]+)"
)


@dataclass
class Stack:
    store: StoreProcess
    open: httpx.AsyncClient  # a gateway without login
    login: httpx.AsyncClient  # a gateway that needs a JWT

    def orders(self) -> dict[str, Order]:
        db = self.store.database()
        try:
            with db.session() as session:
                return {o.number: o for o in session.scalars(select(Order))}
        finally:
            db.close()

    def books(self) -> dict[str, Book]:
        db = self.store.database()
        try:
            with db.session() as session:
                return {b.book_id: b for b in session.scalars(select(Book))}
        finally:
            db.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreProcess]:
    process = StoreProcess(tmp_path).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def stack(
    store: StoreProcess, kafka_settings: KafkaSettings, embedder: Any, tmp_path: Path
) -> AsyncIterator[Stack]:
    prefix = kafka_settings.topic_prefix
    async with AsyncExitStack() as services:
        memory = await services.enter_async_context(
            MemoryService(
                MemorySettings(
                    host="127.0.0.1",
                    port=0,
                    group_id=f"{prefix}memory",
                    kafka=kafka_settings,
                    qdrant=QdrantSettings(path=tmp_path / "qdrant", collection="store"),
                    knowledge_collection=f"{prefix}knowledge",
                    knowledge_sample=False,
                ),
                embedder=embedder,
            )
        )
        memory_api = MemoryApiSettings(url=f"http://127.0.0.1:{memory.port}")
        await services.enter_async_context(
            ResponderService(
                ResponderSettings(
                    host="127.0.0.1",
                    port=0,
                    group_id=f"{prefix}responder",
                    kafka=kafka_settings,
                    memory=memory_api,
                    store_api_url=store.url,
                    orders_timeout_s=2,
                    order_lookup_limit="100 per minute",
                )
            )
        )
        gateways = []
        for auth in ("none", "jwt"):
            gateway = await services.enter_async_context(
                GatewayService(
                    GatewaySettings(
                        host="127.0.0.1",
                        port=0,
                        kafka=kafka_settings,
                        memory={"url": ""},
                        auth=auth,
                        jwt_secret=SECRET if auth == "jwt" else None,
                        ownership_wait_s=3,
                    )
                )
            )
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=60)
            services.push_async_callback(client.aclose)
            gateways.append(client)
        yield Stack(store, *gateways)


def bearer(sub: str) -> dict[str, str]:
    claims = {"sub": sub, "exp": int(time.time() + 600)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def ask(
    client: httpx.AsyncClient,
    text: str,
    session_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Post `text`, read the answer's stream to `done`; returns it with `session_id`."""
    body: dict[str, Any] = {"message": text}
    if session_id:
        body["session_id"] = session_id
    accepted = await client.post("/chat", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    stream = accepted.json()
    events: list[tuple[str, dict[str, Any]]] = []
    async with aconnect_sse(client, "GET", stream["stream_url"], headers=headers or {}) as source:
        async for sse in source.aiter_sse():
            if sse.data:
                events.append((sse.event, json.loads(sse.data)))
    name, done = events[-1]
    assert name == "done", events
    assert "".join(d["delta"] for n, d in events if n == "token") == done["text"]
    start = next(d for n, d in events if n == "start")
    assert start.get("tool") == done["tool"]
    return {**done, "session_id": stream["session_id"]}


def by_status(orders: dict[str, Order]) -> dict[str, Order]:
    found: dict[str, Order] = {}
    for order in sorted(orders.values(), key=lambda o: o.number):
        found.setdefault(order.status, order)
    return found


STATUS_WORDS = {
    "placed": "has been placed and is waiting for payment",
    "paid": "is paid and being prepared for shipping",
    "shipped": "has shipped",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
    "back_ordered": "is back-ordered",
}


async def test_each_order_status_is_told_to_its_owner_by_email(stack: Stack) -> None:
    orders = by_status(stack.orders())
    assert set(orders) == set(STATUS_WORDS)
    for status, order in orders.items():
        done = await ask(
            stack.open, f"Where is my order #{order.number}? My e-mail is {order.customer_email}"
        )
        assert (done["source"], done["tool"]) == ("tool", "order_status"), done
        text = done["text"]
        assert text.startswith(f"Order #{order.number} {STATUS_WORDS[status]}"), text
        for other, words in STATUS_WORDS.items():
            assert other == status or words not in text
        if status in ("shipped", "delivered"):
            assert order.carrier and order.tracking_number
            assert order.carrier in text and order.tracking_number in text
        else:
            assert "racking" not in text
        for line in order.lines:
            assert line.title in text


async def test_unknown_numbers_and_wrong_emails_get_the_same_answer(stack: Stack) -> None:
    orders = stack.orders()
    order = next(iter(orders.values()))
    unknown = next(n for n in map(str, range(100000, 999999)) if n not in orders)
    wrong = await ask(stack.open, f"status of order {order.number}, e-mail eve@example.com")
    missing = await ask(stack.open, f"status of order {unknown}, e-mail eve@example.com")
    assert wrong["tool"] == missing["tool"] == "order_status"
    assert wrong["text"].replace(order.number, "N") == missing["text"].replace(unknown, "N")
    assert "couldn't find" in wrong["text"] and order.status not in wrong["text"]


async def test_the_number_alone_after_the_bot_asked_and_the_signed_in_owner(stack: Stack) -> None:
    order = by_status(stack.orders())["shipped"]
    first = await ask(stack.open, "Hi, where is my order?")
    assert first["tool"] == "order_status" and "order number" in first["text"]
    session = first["session_id"]
    second = await ask(stack.open, order.number, session)
    assert second["tool"] == "order_status" and "e-mail" in second["text"]
    third = await ask(stack.open, order.customer_email, session)
    assert third["text"].startswith(f"Order #{order.number} has shipped"), third
    assert order.tracking_number and order.tracking_number in third["text"]

    # Signed in as the customer who placed it: no e-mail needed.
    owned = next(o for o in stack.orders().values() if o.customer_subject)
    headers = bearer(owned.customer_subject or "")
    mine = await ask(stack.login, f"status of order {owned.number}", headers=headers)
    assert mine["text"].startswith(f"Order #{owned.number} "), mine
    # Someone else's login is no proof.
    theirs = await ask(stack.login, f"status of order {owned.number}", headers=bearer("eve"))
    assert "couldn't find" in theirs["text"] and owned.status not in theirs["text"]


async def test_a_store_stopped_mid_conversation_is_said_honestly(stack: Stack) -> None:
    order = by_status(stack.orders())["paid"]
    question = f"Where is order #{order.number}? {order.customer_email}"
    before = await ask(stack.open, question)
    assert before["text"].startswith(f"Order #{order.number} is paid"), before
    stack.store.stop()
    after = await ask(stack.open, question, before["session_id"])
    assert (after["source"], after["tool"]) == ("tool", "order_status")
    assert after["text"].startswith("I can't reach our order system right now")
    assert "paid" not in after["text"]
    books = await ask(stack.open, "Can you recommend a mystery?", before["session_id"])
    assert books["tool"] == "recommendations"
    assert books["text"].startswith("I can't reach our catalogue right now")


def recommended(done: dict[str, Any], books: dict[str, Book]) -> list[Book]:
    """The books an answer lists, each found in the store's database by its link."""
    found = []
    for line in done["text"].splitlines():
        match = _LINK.match(line)
        if match is None:
            continue
        book_id = match["url"].rsplit("/", 1)[-1]
        book = books[book_id]  # a book that is not in the catalogue fails here
        assert (book.title, book.author) == (match["title"], match["author"])
        assert float(match["price"]) == book.price_cents / 100
        found.append(book)
    return found


def categories(book: Book) -> list[str]:
    return [c.category for c in book.categories]


async def test_recommendations_meet_every_constraint_of_the_request(stack: Stack) -> None:
    books = stack.books()
    done = await ask(stack.open, "Can you recommend a mystery under $15?")
    assert (done["source"], done["tool"]) == ("tool", "recommendations"), done
    picks = recommended(done, books)
    assert len(picks) == 3
    for book in picks:
        assert "Mystery & Thriller" in categories(book)
        assert book.price_cents <= 1500 and book.stock > 0

    done = await ask(stack.open, "recommend a cookbook for beginners in paperback")
    picks = recommended(done, books)
    assert picks and all("Cooking" in categories(b) for b in picks)
    assert all("paperback" in [f.format for f in b.formats] for b in picks)
    # Found by meaning: the beginners' books come first.
    assert "beginner" in picks[0].description.lower() + picks[0].title.lower(), picks[0].title

    done = await ask(stack.open, "what are your bestsellers?")
    in_stock = sorted((b for b in books.values() if b.stock > 0), key=lambda b: -b.sales_last_week)
    assert [b.book_id for b in recommended(done, books)] == [b.book_id for b in in_stock[:3]]


async def test_a_follow_up_to_suggestions_asks_again_as_it_says(stack: Stack) -> None:
    # "anything cheaper?" after a list went to the LLM ("as an AI, I don't have the ability
    # to browse...").
    books = stack.books()
    done = await ask(stack.open, "recommend a mystery")
    session = done["session_id"]
    first = recommended(done, books)
    assert len(first) == 3
    done = await ask(stack.open, "anything cheaper?", session)
    assert (done["source"], done["tool"]) == ("tool", "recommendations"), done
    cheaper = recommended(done, books)
    cheapest = min(b.price_cents for b in first)
    assert cheaper and all(b.price_cents < cheapest for b in cheaper), done["text"]
    assert all("Mystery & Thriller" in categories(b) for b in cheaper)
    done = await ask(stack.open, "any others?", session)
    others = recommended(done, books)
    shown = {b.book_id for b in [*first, *cheaper]}
    assert len(others) == 3 and not {b.book_id for b in others} & shown
    assert all("Mystery & Thriller" in categories(b) for b in others)


async def test_something_like_a_book_and_nothing_that_fits(stack: Stack) -> None:
    books = stack.books()
    done = await ask(stack.open, "Something like Dune, please")
    picks = recommended(done, books)
    assert done["text"].startswith("If you liked Dune")
    assert len(picks) == 3 and "Dune" not in [b.title for b in picks]
    assert "Science Fiction & Fantasy" in categories(picks[0]), [b.title for b in picks]

    # An author's name, not a title: books like theirs, by other authors (this was "I
    # couldn't find that title" and three books of any kind).
    done = await ask(stack.open, "can you recommend something like Agatha Christie?")
    picks = recommended(done, books)
    assert done["text"].startswith("If you like books by Agatha Christie"), done["text"]
    assert len(picks) == 3 and all(b.author != "Agatha Christie" for b in picks)
    assert all("Mystery & Thriller" in categories(b) for b in picks), [b.title for b in picks]

    done = await ask(stack.open, "recommend a mystery under $3")
    assert (done["tool"], recommended(done, books)) == ("recommendations", [])
    cheapest = min(b.price_cents for b in books.values() if "Mystery & Thriller" in categories(b))
    assert cheapest > 300
    assert "couldn't find a book" in done["text"]
    assert (
        "[Mystery & Thriller](" in done["text"] and "/categories/mystery-thriller" in done["text"]
    )
