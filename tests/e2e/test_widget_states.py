"""The widget's behaviour in situations a healthy stack rarely produces on demand: a `reset`
mid-answer, answers with sources, errors of every kind, a lost connection, history that
cannot be loaded. The page is served by a real gateway; the API answers are scripted per test
with Playwright routes, so each situation happens exactly when the test wants it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Route, expect
from widget_support import Stack, module_kafka, start_gateway_only, widget_eval

pytestmark = pytest.mark.integration

SESSION = "5e55" * 8
MESSAGE = "4d55" * 8


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as services:
        yield await start_gateway_only(services, kafka=module_kafka(kafka_bootstrap))


def sse(*events: tuple[str, dict[str, Any], str | None]) -> str:
    """An SSE body: the opening comment, then each (event, data, id)."""
    parts = [": stream open\nretry: 500\n\n"]
    for name, data, event_id in events:
        lines = [f"event: {name}", f"data: {json.dumps(data)}"]
        if event_id:
            lines.append(f"id: {event_id}")
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)


def ev(
    name: str, event_id: str | None = None, **data: Any
) -> tuple[str, dict[str, Any], str | None]:
    return name, {"message_id": MESSAGE, **data}, event_id


class Api:
    """Scripted answers for POST /chat and GET /stream, recording what the widget asked."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.streams: list[str] = []
        self.chat_replies: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.stream_replies: list[str | None] = []  # None: the connection drops
        self.gates: dict[int, asyncio.Event] = {}

    async def chat(self, route: Route) -> None:
        self.posts.append(json.loads(route.request.post_data or "{}"))
        status, body, headers = (
            self.chat_replies.pop(0)
            if self.chat_replies
            else (
                202,
                {"session_id": SESSION, "message_id": MESSAGE, "stream_url": "/stream"},
                {},
            )
        )
        await route.fulfill(status=status, json=body, headers=headers)

    async def stream(self, route: Route) -> None:
        index = len(self.streams)
        self.streams.append(route.request.url)
        gate = self.gates.get(index)
        if gate is not None:
            await gate.wait()
        body = self.stream_replies.pop(0) if self.stream_replies else None
        try:
            if body is None:
                await route.abort("connectionreset")
                return
            await route.fulfill(
                status=200,
                body=body,
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            )
        except PlaywrightError:
            pass  # the page went away (reloaded) while this request waited


async def scripted(open_page: Callable[..., Any], stack: Stack, api: Api) -> Any:
    view = await open_page("about:blank")
    page: Page = view.page
    await page.route("**/chat", api.chat)
    await page.route("**/stream?*", api.stream)
    await page.goto(stack.base_url)
    await page.get_by_role("button", name="Help").click()
    return view


async def ask(page: Page, question: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(question)
    await box.press("Enter")


async def test_reset_replaces_partial_text_and_the_stream_resumes_after_the_last_id(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    api = Api()
    api.stream_replies = [
        sse(
            ev("start", "1-0", attempt="a1"),
            ev("token", "1-1", attempt="a1", seq=0, delta="Hello wor"),
            ev("reset", None, attempt="a1"),
            ev("start", "1-3", attempt="a2"),
            ev("token", "1-4", attempt="a2", seq=0, delta="Hi there! "),
        ),  # ...and the connection ends before the answer does
        sse(
            ev("token", "1-5", attempt="a2", seq=1, delta="See **the guide**."),
            ev(
                "done",
                "1-6",
                attempt="a2",
                text="Hi there! See **the guide**.",
                source="tool",
                sources=[
                    {"title": "Returns guide", "url": "https://shop.example/returns", "score": 0.9},
                    {"title": "Sneaky", "url": "javascript:alert(1)", "score": 0.5},
                    {"title": "Internal note", "url": None, "score": 0.4},
                ],
            ),
        ),
    ]
    api.gates[1] = gate = asyncio.Event()
    view = await scripted(open_page, stack, api)
    page = view.page
    await ask(page, "Where is the returns guide?")

    answer = page.locator(".message.assistant")
    # After the reset only the new attempt's text is shown, and it stays while reconnecting.
    await expect(answer.locator(".body")).to_have_text("Hi there!")
    await expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    gate.set()
    await expect(answer).to_have_attribute("data-state", "done")
    assert "last_event_id=1-4" in api.streams[1]
    await expect(page.get_by_role("status")).to_be_hidden()

    body = answer.locator(".body")
    await expect(body.locator("p").first).to_have_text("Hi there! See the guide.")
    await expect(body.locator("strong")).to_have_text("the guide")
    assert "Hello" not in (await body.text_content() or "")
    sources = body.locator(".sources")
    await expect(sources.locator("a")).to_have_count(1)
    await expect(sources.get_by_role("link", name="Returns guide")).to_have_attribute(
        "href", "https://shop.example/returns"
    )
    await expect(sources).to_contain_text("Sneaky")
    await expect(sources).to_contain_text("Internal note")
    assert api.posts[0]["message"] == "Where is the returns guide?"
    assert api.posts[0]["metadata"] == {"page": f"{stack.base_url}/"}
    assert not view.problems.page_errors


async def test_after_a_reload_the_partial_answer_is_kept_and_a_new_attempt_replaces_it(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    api = Api()
    api.stream_replies = [
        sse(
            ev("start", "1-0", attempt="a1"),
            ev("token", "1-1", attempt="a1", seq=0, delta="Partial "),
        ),
        None,  # held open until the page reloads
        # After the reload, resumed from 1-1: the worker had died and a new attempt starts.
        sse(
            ev("start", "1-5", attempt="a2"),
            ev("token", "1-6", attempt="a2", seq=0, delta="Fresh answer."),
            ev("done", "1-7", attempt="a2", text="Fresh answer.", source="llm"),
        ),
    ]
    api.gates[1] = held = asyncio.Event()
    api.gates[2] = resumed = asyncio.Event()
    view = await scripted(open_page, stack, api)
    page = view.page
    await ask(page, "Tell me a story")
    answer = page.locator(".message.assistant")
    await expect(answer.locator(".body")).to_have_text("Partial")
    await expect(page.get_by_role("status")).to_have_text("Reconnecting…")

    await page.reload()
    held.set()
    # The text so far is back at once, before the stream resumes.
    await expect(answer.locator(".body")).to_have_text("Partial")
    await expect(page.locator(".message.user")).to_have_text("You said: Tell me a story")
    resumed.set()
    await expect(answer).to_have_attribute("data-state", "done")
    await expect(answer.locator(".body")).to_have_text("Fresh answer.")
    assert "last_event_id=1-1" in api.streams[2]
    await expect(page.locator(".message")).to_have_count(2)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "7"}, "Please wait 7 seconds and send it again."),
        (503, {"Retry-After": "2"}, "unavailable right now"),
        (413, {}, "too long. Please shorten it"),
    ],
)
async def test_a_refused_message_gets_a_kind_error_and_is_kept(
    stack: Stack,
    open_page: Callable[..., Any],
    status: int,
    headers: dict[str, str],
    expected: str,
) -> None:
    api = Api()
    api.chat_replies = [(status, {"error": {"code": "x", "message": "refused"}}, headers)]
    view = await scripted(open_page, stack, api)
    page = view.page
    await ask(page, "Can I pay with a gift card?")

    await expect(page.get_by_role("alert")).to_contain_text(expected)
    await expect(page.get_by_role("textbox", name="Your message")).to_have_value(
        "Can I pay with a gift card?"
    )
    await expect(page.locator(".message")).to_have_count(0)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("timeout", "This answer took too long. Please ask again"),
        ("unavailable", "unavailable right now"),
        ("failed", "Something went wrong while answering. Please try again."),
    ],
)
async def test_an_answer_that_fails_says_what_to_do_and_can_be_asked_again(
    stack: Stack, open_page: Callable[..., Any], reason: str, expected: str
) -> None:
    api = Api()
    api.stream_replies = [
        sse(
            ev("start", "1-0", attempt="a1"),
            ev("error", "1-1", attempt="a1", code="x", message="internal", reason=reason),
        ),
        sse(
            ev("start", "2-0", attempt="b1"),
            ev("done", "2-1", attempt="b1", text="Second time lucky.", source="llm"),
        ),
    ]
    view = await scripted(open_page, stack, api)
    page = view.page
    await ask(page, "Tell me about gift cards")

    answer = page.locator(".message.assistant")
    await expect(answer).to_have_attribute("data-state", "error")
    await expect(answer.locator(".note")).to_contain_text(expected)
    await answer.get_by_role("button", name="Ask again").click()
    await expect(page.locator(".message.assistant").last).to_have_text(
        "Assistant said: Second time lucky."
    )
    assert [post["message"] for post in api.posts] == ["Tell me about gift cards"] * 2


async def test_lost_connection_shows_reconnecting_then_recovers(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    api = Api()
    api.stream_replies = [
        None,
        None,
        sse(ev("start", "1-0", attempt="a1"), ev("done", "1-1", attempt="a1", text="Back.")),
    ]
    api.gates[2] = gate = asyncio.Event()
    view = await scripted(open_page, stack, api)
    page = view.page
    await ask(page, "Hello?")

    await expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    await expect(page.locator(".notice")).to_be_hidden()  # quiet: no alarming error
    gate.set()
    await expect(page.locator(".message.assistant")).to_have_attribute("data-state", "done")
    await expect(page.get_by_role("status")).to_be_hidden()
    assert len(api.streams) == 3


async def test_history_unavailable_falls_back_to_what_the_page_remembers(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    api = Api()
    api.stream_replies = [
        sse(ev("start", "1-0", attempt="a1"), ev("done", "1-1", attempt="a1", text="Remembered."))
    ]
    history: list[int] = []
    view = await scripted(open_page, stack, api)
    page = view.page
    page.on("response", lambda r: history.append(r.status) if "/sessions/" in r.url else None)
    await ask(page, "Do you remember?")
    await expect(page.locator(".message.assistant")).to_have_attribute("data-state", "done")

    await page.reload()  # this gateway has no memory service: history answers 503

    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect(page.locator(".message.user")).to_have_text("You said: Do you remember?")
    await expect(page.locator(".message.assistant")).to_have_text("Assistant said: Remembered.")
    await expect(page.locator(".notice")).to_be_hidden()
    assert history == [503]


async def test_markdown_renderer_builds_nodes_and_keeps_only_safe_links(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await page.evaluate("TidingsWidget.ready.then(() => true)")
    html = await widget_eval(
        page,
        """
        const box = document.createElement('div');
        box.append(TidingsWidget.renderMarkdown(arg));
        return box.innerHTML;
        """,
        "# Title\n- one <b>x</b>\n- [two](JaVaScRiPt:alert(1))\n\n1. `<i>`\n2. "
        "[mail](mailto:help@shop.example) <https://a.example/x> [rel](/relative)\n\n"
        "```\n<script>alert(1)</script>\n```\n> quoted *em* __strong__ data:text/html,x",
    )
    assert html == (
        '<p class="heading"><strong>Title</strong></p>'
        "<ul><li>one &lt;b&gt;x&lt;/b&gt;</li><li>two</li></ul>"
        "<ol><li><code>&lt;i&gt;</code></li><li>"
        '<a href="mailto:help@shop.example" target="_blank" rel="noopener noreferrer">mail</a> '
        '<a href="https://a.example/x" target="_blank" rel="noopener noreferrer">'
        "https://a.example/x</a> rel</li></ol>"
        "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>"
        "<blockquote><p>quoted <em>em</em> <strong>strong</strong> data:text/html,x</p>"
        "</blockquote>"
    )
