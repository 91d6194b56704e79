"""Recommended books in the widget, in a real browser against the real stack with the store
backend process: a compact list of linked books (each one the store's), and the same text
from the OpenAI-compatible API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select
from test_widget_chat import ask, assert_clean, last_answer, open_help, wait_state
from widget_support import Stack, module_kafka, start_full_stack

from tests.store_process import StoreProcess
from tidings.store.models import Book

pytestmark = pytest.mark.integration

QUESTION = "Can you recommend a mystery under $15?"
SCREENSHOT = Path("/tmp/tidings-widget-recommendations.png")
_MARKDOWN_LINK = re.compile(r"^- \[([^\]]+)\]\(([^)]+)\)(.*)$")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    process = StoreProcess(tmp_path_factory.mktemp("store")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str,
    llm_base_url: str,
    embedder: Any,
    store: StoreProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("widget-store-stack")
    async with AsyncExitStack() as services:
        yield await start_full_stack(
            services,
            kafka=module_kafka(kafka_bootstrap),
            llm_base_url=llm_base_url,
            embedder=embedder,
            workdir=workdir,
            store_api_url=store.url,
        )


def catalogue(store: StoreProcess) -> dict[str, Book]:
    db = store.database()
    try:
        with db.session() as session:
            return {b.book_id: b for b in session.scalars(select(Book))}
    finally:
        db.close()


async def test_recommended_books_are_a_compact_list_of_links_and_v1_says_the_same(
    stack: Stack, store: StoreProcess, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, QUESTION)
    assert await wait_state(page, "done") == "done"
    answer = last_answer(page)
    await expect(answer).to_have_attribute("data-tool", "recommendations")
    items = answer.locator(".body ul li")
    await expect(items).to_have_count(3)
    books = catalogue(store)
    shown = []
    for index in range(3):
        item = items.nth(index)
        anchor = item.locator("a")
        await expect(anchor).to_have_count(1)
        href = await anchor.get_attribute("href")
        assert href and href.startswith(f"{store.url}/books/")
        assert await anchor.get_attribute("target") == "_blank"
        book = books[href.rsplit("/", 1)[-1]]
        assert await anchor.text_content() == book.title
        assert "Mystery & Thriller" in [c.category for c in book.categories]
        assert book.price_cents <= 1500 and book.stock > 0
        line = await item.text_content() or ""
        assert line.startswith(f"{book.title} by {book.author}, ${book.price_cents / 100:.2f}")
        shown.append((book.title, href, line))
        # The link opens the book's page in the shop.
        async with httpx.AsyncClient() as http:
            page_html = (await http.get(href)).text
        assert book.title.replace("'", "&#x27;") in page_html
    # Compact: one line per book, the list no taller than three lines of text.
    heights = [
        await items.nth(i).evaluate("e => e.getBoundingClientRect().height") for i in range(3)
    ]
    line_height = await items.first.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert all(h <= 2.2 * line_height for h in heights), (heights, line_height)
    await page.screenshot(path=str(Path("/tmp") / "tidings-widget-recommendations.png"))
    assert_clean(view.problems)

    # The OpenAI-compatible API returns the same text: the same books, as Markdown links.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        completion = await http.post(
            "/v1/chat/completions",
            json={"model": "tidings", "messages": [{"role": "user", "content": QUESTION}]},
        )
    assert completion.status_code == 200, completion.text
    content = completion.json()["choices"][0]["message"]["content"]
    listed = [m.groups() for m in map(_MARKDOWN_LINK.match, content.splitlines()) if m]
    assert [(title, url, f"{title}{rest}") for title, url, rest in listed] == shown
