"""How the widget is delivered and authenticated: the files and headers the gateway serves,
and the token hand-over when the gateway runs with GATEWAY_AUTH=jwt.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
import pytest
from playwright.async_api import Request, expect
from widget_support import Stack, module_kafka

from tidings.common.memory_api import MemoryApiSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

SECRET = "widget-tests-secret-0123456789-abcdef"


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    """A gateway that wants bearer tokens (no workers: the tests look at the requests)."""
    kafka = module_kafka(kafka_bootstrap)
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka,
        memory=MemoryApiSettings(url=""),
        auth="jwt",
        jwt_secret=SECRET,
    )
    async with AsyncExitStack() as services:
        gateway = await services.enter_async_context(GatewayService(settings))
        yield Stack(f"http://127.0.0.1:{gateway.port}", kafka, gateway)


def token(subject: str) -> str:
    return jwt.encode({"sub": subject, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


class _Inline(HTMLParser):
    """Finds what a strict CSP would block: inline scripts, handlers and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self.scripts.append(dict(attrs))
            if "src" not in names:
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        self.problems += [f"{tag}[{n}]" for n in names if n.startswith("on") or n == "style"]


async def test_the_gateway_serves_the_page_and_an_embeddable_script(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        page = await client.get("/")
        script = await client.get("/widget.js")
        styles = await client.get("/widget.css")
        demo_styles = await client.get("/demo.css")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    parser = _Inline()
    parser.feed(page.text)
    assert parser.problems == []
    assert parser.scripts == [{"src": "widget.js", "data-title": "Bookstore help", "defer": None}]

    for response, media_type in [
        (script, "text/javascript"),
        (styles, "text/css"),
        (demo_styles, "text/css"),
    ]:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers.get("etag")
    # Other sites' pages must be allowed to load the widget's files.
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"
    assert styles.headers["cross-origin-resource-policy"] == "cross-origin"
    # Never turns text into markup, never evaluates strings as code, never calls out.
    source = script.text
    for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]:
        assert forbidden not in source, forbidden
    assert not re.search(r"new Function\b|setTimeout\(\s*[\"'`]", source)
    assert not re.search(r"https?://(?!help\.example\.com|www\.w3\.org/2000/svg)[a-z]", source), (
        "no CDN URLs"
    )


async def test_with_jwt_the_page_hands_the_widget_a_token(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    seen: list[Request] = []
    page.on("request", lambda r: seen.append(r) if "/chat" in r.url or "/stream" in r.url else None)
    await page.evaluate("TidingsWidget.ready.then(() => true)")

    # Without a token the gateway refuses, and the widget says what to do.
    await page.get_by_role("button", name="Help").click()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill("Where is my order?")
    await box.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("sign-in has expired")
    await expect(box).to_have_value("Where is my order?")

    # setToken: the message is accepted and the stream is opened with the same token.
    alice = token("alice")
    await page.evaluate("(t) => TidingsWidget.setToken(t)", alice)
    await box.press("Enter")
    await expect(page.locator(".message.user")).to_have_count(1)
    await expect(page.locator(".message.assistant")).to_have_attribute("data-state", "waiting")
    stream = next(r for r in seen if "/stream?" in r.url)
    assert stream.headers["authorization"] == f"Bearer {alice}"
    assert "token" not in stream.url  # never in URLs (logs, referrers)


async def test_a_token_provider_is_asked_again_after_a_401(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await page.evaluate(
        """(tokens) => {
          window.__asked = 0;
          TidingsWidget.setTokenProvider(async () => tokens[window.__asked++]);
        }""",
        ["expired-or-garbage", token("bob")],
    )
    await page.get_by_role("button", name="Help").click()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill("Hello")
    await box.press("Enter")
    await expect(page.locator(".message.user")).to_have_count(1)
    assert await page.evaluate("window.__asked") == 2
    await expect(page.get_by_role("alert")).to_be_hidden()


async def test_the_host_page_can_theme_it_with_css_custom_properties(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await page.evaluate("TidingsWidget.ready.then(() => true)")
    launcher = page.get_by_role("button", name="Help")
    await expect(launcher).to_have_css("background-color", "rgb(29, 78, 216)")
    await page.evaluate(
        "document.querySelector('#tidings-widget').style.setProperty('--tw-accent', '#7c2d12')"
    )
    await expect(launcher).to_have_css("background-color", "rgb(124, 45, 18)")
    # The host page's own styles do not leak in.
    await page.evaluate("document.body.style.fontFamily = 'monospace'")
    await expect(launcher).not_to_have_css("font-family", "monospace")
