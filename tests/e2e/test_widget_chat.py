"""The widget in a real browser against the real stack: FAQ and model answers, streaming,
reload in the middle of an answer, Stop, history, hostile answer text, keyboard only, and
embedding on another site.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from widget_support import (
    RETURNS_ANSWER,
    SCREENSHOT_DIR,
    SHIPPING_FRAGMENT,
    CuttableProxy,
    Stack,
    faq_with_extra_intents,
    focused_in_widget,
    module_kafka,
    start_full_stack,
    widget_eval,
    words,
)

pytestmark = pytest.mark.integration

XSS_ANSWER = (
    "Careful: <img src=x onerror=alert(1)> and <script>alert(2)</script> stay text. "
    "A [bad link](javascript:alert(3)) is not a link, a [good one](https://example.com/help) is."
)
XSS_INTENT = {"id": "xss_probe", "answer": XSS_ANSWER, "phrases": ["security probe"]}
LONG_QUESTION = "Write a long story about a dragon who opens a bookshop in a small village."


@pytest.fixture(scope="module")
def shop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Another origin (a shop's site) that embeds the widget with one script tag."""
    root = tmp_path_factory.mktemp("shop")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str,
    llm_base_url: str,
    embedder: Any,
    tmp_path_factory: pytest.TempPathFactory,
    shop_server: tuple[str, Path],
) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("widget-stack")
    async with AsyncExitStack() as services:
        yield await start_full_stack(
            services,
            kafka=module_kafka(kafka_bootstrap),
            llm_base_url=llm_base_url,
            embedder=embedder,
            workdir=workdir,
            faq_path=faq_with_extra_intents(workdir / "faq.yaml", [XSS_INTENT]),
            cors_origins=[shop_server[0]],
            max_tokens=64,
        )


async def ask(page: Page, question: str) -> None:
    """Send `question` and wait until its answer bubble exists (so waits target it)."""
    answers = page.locator(".message.assistant")
    before = await answers.count()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(question)
    await box.press("Enter")
    await expect(answers).to_have_count(before + 1)


async def open_help(page: Page) -> None:
    await page.get_by_role("button", name="Help").click()
    await expect(page.get_by_role("dialog", name="Bookstore help")).to_be_visible()


def last_answer(page: Page) -> Any:
    return page.locator(".message.assistant").last


async def until_streaming(page: Page) -> None:
    """Wait until the last answer shows `streaming`, checked every animation frame.

    A 64-token answer can stream from its first token to `done` in about 250 ms, which fits
    between two of `expect()`'s polls (seen once in `make test`).
    """
    answer = await last_answer(page).element_handle()
    await page.wait_for_function(
        "answer => answer.dataset.state === 'streaming'",
        arg=answer,
        polling="raf",
        timeout=60_000,
    )


async def wait_state(page: Page, states: str, timeout_s: float = 90) -> str:
    """Wait until the last answer's `data-state` is one of `states` (space separated)."""
    wanted = states.split()
    answer = last_answer(page)
    for _ in range(int(timeout_s * 10)):
        state = await answer.get_attribute("data-state")
        if state in wanted:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"answer state stayed {state!r}, wanted {wanted}")


def assert_clean(problems: Any) -> None:
    assert not problems.dialogs, problems.dialogs
    assert not problems.page_errors, problems.page_errors
    csp = [text for text in problems.console_errors if "Content Security Policy" in text]
    assert not csp, csp


async def test_faq_question_is_answered_in_the_panel(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, "What is your return policy?")

    assert await wait_state(page, "done error") == "done"
    await expect(page.locator(".message.user")).to_have_text(
        "You said: What is your return policy?"
    )
    await expect(last_answer(page).locator(".body")).to_have_text(RETURNS_ANSWER)
    # The composer is ready for the next question and no Stop button lingers.
    await expect(page.get_by_role("button", name="Send message")).to_be_visible()
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert_clean(view.problems)


async def test_model_answer_grows_token_by_token_after_a_typing_indicator(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    # Record every version of the answer bubble the browser renders, as it happens.
    await widget_eval(
        page,
        """
        window.__frames = [];
        const record = () => {
          const answer = [...root.querySelectorAll('.message.assistant')].pop();
          if (!answer) return;
          window.__frames.push({
            state: answer.dataset.state,
            typing: Boolean(answer.querySelector('.typing')),
            text: answer.querySelector('.body').textContent,
          });
        };
        new MutationObserver(record).observe(root.querySelector('.log'),
          {subtree: true, childList: true, characterData: true, attributes: true});
        """,
    )
    await ask(page, LONG_QUESTION)
    assert await wait_state(page, "done error") == "done"

    frames = await page.evaluate("window.__frames")
    assert frames[0]["typing"] and frames[0]["state"] == "waiting", frames[0]
    streaming = [f["text"] for f in frames if f["state"] == "streaming" and f["text"]]
    distinct = list(dict.fromkeys(streaming))
    assert len(distinct) >= 2, f"the text should grow in steps, saw {distinct}"
    assert all(len(a) <= len(b) for a, b in pairwise(distinct))
    assert not any(f["typing"] for f in frames if f["state"] != "waiting"), "typing after text"
    final = await last_answer(page).locator(".body").text_content()
    assert final and words(distinct[0])[0] == words(final)[0]
    assert_clean(view.problems)


async def test_reload_during_an_answer_resumes_it_and_shows_it_once(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, "What is your return policy?")
    await wait_state(page, "done")
    await ask(page, LONG_QUESTION)
    await until_streaming(page)
    message_id = await last_answer(page).get_attribute("data-message-id")
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/stream?" in r.url else None)

    await page.reload()

    # The panel comes back open, with the earlier exchange and the same answer, resumed.
    await expect(page.get_by_role("dialog", name="Bookstore help")).to_be_visible()
    assert await wait_state(page, "done error") == "done"
    assert any("last_event_id=" in url for url in streams), streams
    answers = page.locator(f'.message.assistant[data-message-id="{message_id}"]')
    await expect(answers).to_have_count(1)
    await expect(page.locator(f'.message.user[data-message-id="{message_id}"]')).to_have_count(1)
    await expect(page.locator(".message.assistant").first).to_contain_text("returns within 30")

    session_id = await page.evaluate(
        "JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage)[0])).session_id"
    )
    done = await final_answer(stack, session_id, message_id or "")
    shown = await answers.locator(".body").text_content()
    assert words(shown or "") == words(done), "the answer must appear exactly once"
    assert_clean(view.problems)


async def final_answer(stack: Stack, session_id: str, message_id: str) -> str:
    """The `done` text of a message, read back from the gateway's stream replay."""
    import json

    from httpx_sse import aconnect_sse

    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client,
        aconnect_sse(
            client, "GET", f"/stream?session_id={session_id}&message_id={message_id}"
        ) as source,
    ):
        async for sse in source.aiter_sse():
            if sse.event == "done":
                text: str = json.loads(sse.data)["text"]
                return text
    raise AssertionError("no done event replayed")


async def test_stop_cancels_the_answer(stack: Stack, open_page: Callable[..., Any]) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, LONG_QUESTION)
    await until_streaming(page)

    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/cancel")
    ) as cancel:
        await page.get_by_role("button", name="Stop").click()
    request = await cancel.value
    message_id = await last_answer(page).get_attribute("data-message-id")
    assert f"/chat/{message_id}/cancel" in request.url

    # The responder stops and the stream ends with `error` reason `cancelled`.
    assert await wait_state(page, "cancelled stopped done error", timeout_s=30) == "cancelled"
    await expect(last_answer(page).locator(".note")).to_have_text("Stopped.")
    await expect(page.get_by_role("button", name="Send message")).to_be_visible()
    # Focus went back to the message box, ready for the next question.
    assert (await focused_in_widget(page) or "").startswith("panel:textarea")
    assert_clean(view.problems)


async def test_history_is_restored_from_the_server_after_a_reload(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, "How long does shipping take?")
    assert await wait_state(page, "done") == "done"
    key = await page.evaluate("Object.keys(sessionStorage)[0]")
    state = await page.evaluate("(key) => JSON.parse(sessionStorage.getItem(key))", key)
    # Wait until the memory worker has stored both turns, then forget the page's own copy.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        for _ in range(100):
            history = await client.get(f"/sessions/{state['session_id']}/messages")
            if history.status_code == 200 and len(history.json()["messages"]) == 2:
                break
            await asyncio.sleep(0.2)
        assert len(history.json()["messages"]) == 2, history.text
    await page.evaluate(
        "(key) => { const s = JSON.parse(sessionStorage.getItem(key)); delete s.turns;"
        " sessionStorage.setItem(key, JSON.stringify(s)); }",
        key,
    )
    await page.reload()

    await expect(page.get_by_role("dialog", name="Bookstore help")).to_be_visible()
    await expect(page.locator(".message.user")).to_have_text(
        "You said: How long does shipping take?"
    )
    await expect(page.locator(".message.assistant")).to_contain_text(SHIPPING_FRAGMENT)
    assert_clean(view.problems)


async def test_hostile_answer_text_renders_inert(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    await open_help(page)
    await ask(page, "security probe")
    assert await wait_state(page, "done") == "done"

    body = last_answer(page).locator(".body")
    await expect(body).to_contain_text("<img src=x onerror=alert(1)>")
    await expect(body).to_contain_text("<script>alert(2)</script>")
    await expect(page.locator(".log img")).to_have_count(0)
    await expect(page.locator(".log script")).to_have_count(0)
    links = body.locator("a")
    await expect(links).to_have_count(1)
    await expect(links).to_have_attribute("href", "https://example.com/help")
    await expect(links).to_have_attribute("target", "_blank")
    await expect(links).to_have_attribute("rel", "noopener noreferrer")
    await expect(body).to_contain_text("A bad link is not a link")
    hrefs = await widget_eval(
        page, "return [...root.querySelectorAll('[href],[src],[onerror]')].map(e => e.outerHTML)"
    )
    assert not [h for h in hrefs if "javascript:" in h or "onerror" in h], hrefs
    await asyncio.sleep(0.3)  # a handler would have fired by now
    assert view.problems.dialogs == []
    assert_clean(view.problems)


async def test_keyboard_only_conversation(stack: Stack, open_page: Callable[..., Any]) -> None:
    view = await open_page(stack.base_url)
    page = view.page
    # Tab through the page until the Help button has focus.
    for _ in range(10):
        await page.keyboard.press("Tab")
        if (await focused_in_widget(page) or "").endswith("launcher"):
            break
    else:
        raise AssertionError("the Help button is not reachable with Tab")
    outline = await widget_eval(
        page,
        "const s = getComputedStyle(root.activeElement); return [s.outlineStyle, s.outlineWidth]",
    )
    assert outline == ["solid", "3px"], "keyboard focus must be visible"

    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Bookstore help")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("aria-modal", "true")
    await expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")
    assert await focused_in_widget(page) == "panel:textarea.input"

    await page.keyboard.type("How long does shipping take?")
    await page.keyboard.press("Enter")
    assert await wait_state(page, "done") == "done"
    await expect(last_answer(page)).to_contain_text(SHIPPING_FRAGMENT)

    # Focus cycles inside the open panel, both ways.
    for key in ["Tab"] * 7 + ["Shift+Tab"] * 7:
        await page.keyboard.press(key)
        assert (await focused_in_widget(page) or "").startswith("panel:"), key

    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert await focused_in_widget(page) == "outside:button.launcher"
    assert_clean(view.problems)


async def test_one_script_tag_embeds_it_on_another_site(
    stack: Stack, shop_server: tuple[str, Path], open_page: Callable[..., Any]
) -> None:
    shop_url, shop_root = shop_server
    gateway = stack.base_url
    # The shop has its own strict policy that allows exactly the gateway.
    (shop_root / "index.html").write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src {gateway};
 style-src 'self' {gateway}; connect-src {gateway}">
<title>Shop</title>
<script src="{gateway}/widget.js" data-gateway="{gateway}" data-title="Bookstore help" defer>
</script></head><body><h1>A shop</h1></body></html>"""
    )
    view = await open_page(f"{shop_url}/index.html")
    page = view.page
    await open_help(page)
    await ask(page, "What is your return policy?")
    assert await wait_state(page, "done error") == "done"
    await expect(last_answer(page).locator(".body")).to_have_text(RETURNS_ANSWER)
    assert_clean(view.problems)


CONTRAST_JS = """
const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = (el) => {
  for (let node = el; node; node = node.parentElement || node.getRootNode().host) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const ratio = (el) => {
  const a = lum(parse(getComputedStyle(el).color));
  const b = lum(background(el));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
};
const pick = {
  title: root.querySelector('.title'),
  launcher: root.querySelector('.launcher span'),
  user: root.querySelector('.message.user p'),
  answer: root.querySelector('.message.assistant p'),
  placeholder: root.querySelector('.input'),
  send: root.querySelector('.send'),
};
const out = {};
for (const [name, el] of Object.entries(pick)) out[name] = ratio(el);
out.panelLuminance = lum(background(root.querySelector('.log')));
return out;
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(
    ("device", "viewport"),
    [("desktop", {"width": 1280, "height": 800}), ("mobile", {"width": 360, "height": 740})],
)
async def test_layout_contrast_and_screenshots(
    stack: Stack,
    open_page: Callable[..., Any],
    tmp_path: Path,
    scheme: str,
    device: str,
    viewport: dict[str, int],
) -> None:
    """Readable (AA contrast) in light and dark, fits a 360 px phone; saves the screenshots.

    `TIDINGS_UPDATE_SCREENSHOTS=1` writes them to docs/screenshots/ (for the README).
    """
    view = await open_page(stack.base_url, viewport=viewport, color_scheme=scheme)
    page = view.page
    await open_help(page)
    for question in ["What is your return policy?", "How long does shipping take?"]:
        await ask(page, question)
        assert await wait_state(page, "done") == "done"

    measured = await widget_eval(page, CONTRAST_JS)
    for name in ["title", "launcher", "user", "answer", "send"]:
        assert measured[name] >= 4.5, (name, measured)
    if scheme == "dark":
        assert measured["panelLuminance"] < 0.05, measured
    else:
        assert measured["panelLuminance"] > 0.9, measured

    panel = await page.get_by_role("dialog").bounding_box()
    assert panel is not None
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= viewport["width"]
    assert panel["y"] >= 0 and panel["y"] + panel["height"] <= viewport["height"]
    if device == "mobile":
        assert panel["width"] == viewport["width"], "the panel takes the whole phone screen"
    overflow = await widget_eval(
        page, "const log = root.querySelector('.log'); return log.scrollWidth - log.clientWidth"
    )
    assert overflow <= 0, "nothing may scroll sideways"

    folder = SCREENSHOT_DIR if os.environ.get("TIDINGS_UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=folder / f"widget-{device}-{scheme}.png")
    assert_clean(view.problems)


async def test_network_loss_mid_answer_reconnects_and_completes_once(
    stack: Stack, open_page: Callable[..., Any]
) -> None:
    async with CuttableProxy(stack.gateway.port) as proxy:
        view = await open_page(f"http://127.0.0.1:{proxy.port}/")
        page = view.page
        streams: list[str] = []
        page.on("request", lambda r: streams.append(r.url) if "/stream?" in r.url else None)
        await open_help(page)
        await ask(page, LONG_QUESTION)
        answer = last_answer(page)
        await until_streaming(page)

        proxy.cut()  # the network goes away mid-answer...
        await expect(page.get_by_role("status")).to_have_text("Reconnecting…")
        await expect(page.locator(".notice")).to_be_hidden()
        await asyncio.sleep(1.5)  # ...long enough for reconnects to fail and back off
        proxy.restore()

        assert await wait_state(page, "done error") == "done"
        await expect(page.get_by_role("status")).to_be_hidden()
        assert len(streams) >= 3, streams
        assert all("last_event_id=" in url for url in streams[1:]), streams
        message_id = await answer.get_attribute("data-message-id")
        session_id = await page.evaluate(
            "JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage)[0])).session_id"
        )
        done = await final_answer(stack, session_id, message_id or "")
        shown = await answer.locator(".body").text_content()
        assert words(shown or "") == words(done), "resumed text must not be lost or doubled"
        await view.context.close()
