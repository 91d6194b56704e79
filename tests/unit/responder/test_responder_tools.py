"""Order status answers say only what the orders API said."""

from __future__ import annotations

import httpx
import pytest

from tidings.responder.tools import OrderStatusTool, find_order_number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Where is order #123456?", "123456"),
        ("status of 654321 please", "654321"),
        ("order#111222", "111222"),
        ("my phone is 1234567", None),
        ("order 12345", None),
        ("where is my order?", None),
        ("ref A123456", None),
    ],
)
def test_order_numbers_are_six_digits_or_hash_six_digits(text: str, number: str | None) -> None:
    assert find_order_number(text) == number


def tool(handler: httpx.MockTransport) -> OrderStatusTool:
    return OrderStatusTool("http://orders.test", timeout_s=0.5, transport=handler)


async def test_a_known_order_is_answered_from_the_api() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"status": "shipped", "eta": "2026-11-24", "x": 1})

    answer = await tool(httpx.MockTransport(handle)).answer("where is #123456?")
    assert seen == ["/api/orders/123456/status"]
    assert answer is not None and answer.outcome == "found"
    assert answer.text == "Order #123456 is shipped. Estimated delivery: 2026-11-24."


async def test_eta_is_optional() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"status": "processing"}))
    answer = await tool(transport).answer("123456")
    assert answer is not None and answer.text == "Order #123456 is processing."


async def test_an_unknown_order_is_not_found_politely() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(404, json={"detail": "no"}))
    answer = await tool(transport).answer("order 999999")
    assert answer is not None and answer.outcome == "not_found"
    assert "couldn't find an order" in answer.text and "#999999" in answer.text


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


@pytest.mark.parametrize(
    "handle",
    [
        refuse,
        slow,
        lambda r: httpx.Response(503, text="down"),
        lambda r: httpx.Response(200, text="<html>not json</html>"),
        lambda r: httpx.Response(200, json={"eta": "tomorrow"}),
        lambda r: httpx.Response(200, json={"status": ""}),
    ],
    ids=["refused", "timeout", "5xx", "garbage", "no-status", "empty-status"],
)
async def test_a_failing_api_gets_an_honest_cannot_look_it_up(handle: object) -> None:
    answer = await tool(httpx.MockTransport(handle)).answer("#123456")  # type: ignore[arg-type]
    assert answer is not None and answer.outcome == "unavailable"
    assert answer.text.startswith("I can't look up order #123456 right now")
    assert "shipped" not in answer.text and "tomorrow" not in answer.text


async def test_no_order_number_means_the_tool_stays_out() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the API must not be called")

    assert await tool(httpx.MockTransport(never)).answer("where is my order?") is None
