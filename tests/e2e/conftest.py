"""Browser tests of the chat widget: headless Debian Chromium driven by Playwright, against a
real stack (gateway, responder and memory in this process, on the session's broker and
llama.cpp server), each test module on its own topics.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

CHROMIUM = os.environ.get("TIDINGS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Playwright's assertions wait 5 s by default. These machines are shared: under a neighbour's
# load one CI run needed more than 5 s to show the answer bubble (the POST, then the first
# render). An assertion that still fails after 20 s is a real failure.
expect.set_options(timeout=20_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (set TIDINGS_TEST_CHROMIUM)")
        for item in items:
            if Path(str(item.fspath)).name.startswith("test_widget"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole session; every test gets its own context."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


@dataclass
class PageProblems:
    """What a page complained about: console errors (CSP violations...) and dialogs."""

    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@dataclass
class WidgetPage:
    page: Page
    context: BrowserContext
    problems: PageProblems


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Callable[..., Any]]:
    """`await open_page(url, **context_options)`: a fresh context and page, closed afterwards."""
    contexts: list[BrowserContext] = []

    async def opener(url: str, **options: Any) -> WidgetPage:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await browser.new_context(**options)
        contexts.append(context)
        page = await context.new_page()
        problems = PageProblems()
        page.on(
            "console",
            lambda msg: problems.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda error: problems.page_errors.append(str(error)))

        async def on_dialog(dialog: Any) -> None:
            problems.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await page.goto(url)
        return WidgetPage(page, context, problems)

    yield opener
    for context in contexts:
        await context.close()
