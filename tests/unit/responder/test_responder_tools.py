"""The order-status tool's conversation and its honesty, against a stand-in store API.

The store itself is exercised through the real stack in tests/integration/test_store_tools.py;
here the store's answers are fixed so that each rule of the tool is checked alone.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tidings.common.events import HistoryTurn, UserMessage
from tidings.common.store_api import StoreClient
from tidings.responder.tools import OrderStatusTool
from tidings.responder.tools.orders import ASK_NUMBER

ORDER = {
    "number": "123456",
    "status": "shipped",
    "placed_at": "2026-11-20T10:00:00Z",
    "updated_at": "2026-11-21T10:00:00Z",
    "carrier": "UPS",
    "tracking_number": "1Z999",
    "estimated_delivery": "2026-11-24",
    "items": [{"book_id": "9780001018136", "title": "Dune", "quantity": 1}],
}
OWNER = ("ada@example.com", "user-ada")


def store_api(seen: list[dict[str, object]]) -> httpx.MockTransport:
    """The store's rule: the order for its owner, 404 for anything else."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["number"] == "123456" and (
            body.get("email") == OWNER[0] or body.get("customer") == OWNER[1]
        ):
            return httpx.Response(200, json=ORDER)
        return httpx.Response(404, json={"error": {"code": "order_not_found", "message": "-"}})

    return httpx.MockTransport(handle)


def tool(transport: httpx.MockTransport, limit: str = "5 per 10 minutes") -> OrderStatusTool:
    return OrderStatusTool(StoreClient("http://store.test", transport=transport), limit=limit)


def msg(text: str, session: str = "s1", user: str | None = None, **kw: object) -> UserMessage:
    return UserMessage(message_id="m", session_id=session, text=text, user=user, **kw)  # type: ignore[arg-type]


async def test_the_owner_by_email_gets_the_status_and_tracking() -> None:
    seen: list[dict[str, object]] = []
    answer = await tool(store_api(seen)).answer(msg("Where is order #123456? ada@example.com"))
    assert answer is not None and answer.outcome == "found"
    assert answer.text.startswith("Order #123456 has shipped with UPS. Tracking number: 1Z999.")
    assert "Tuesday, November 24" in answer.text and "Dune" in answer.text
    assert seen == [{"number": "123456", "email": "ada@example.com", "customer": None}]


async def test_the_signed_in_owner_needs_no_email() -> None:
    seen: list[dict[str, object]] = []
    answer = await tool(store_api(seen)).answer(msg("status of order 123456", user="user-ada"))
    assert answer is not None and answer.outcome == "found"
    assert seen[0]["customer"] == "user-ada"


async def test_unknown_numbers_and_wrong_proofs_get_the_same_words() -> None:
    orders = tool(store_api([]))
    wrong = await orders.answer(msg("order #123456, my e-mail is eve@example.com", "a"))
    unknown = await orders.answer(msg("order #654321, my e-mail is eve@example.com", "b"))
    assert wrong is not None and unknown is not None
    assert wrong.outcome == unknown.outcome == "not_found"
    assert wrong.text.replace("123456", "N") == unknown.text.replace("654321", "N")
    assert "shipped" not in wrong.text


async def test_without_proof_the_tool_asks_for_the_email_then_looks_up() -> None:
    seen: list[dict[str, object]] = []
    orders = tool(store_api(seen))
    asked = await orders.answer(msg("Where is my order #123456?"))
    assert asked is not None and asked.outcome == "asked" and "e-mail" in asked.text
    assert seen == []
    found = await orders.answer(msg("ada@example.com"))
    assert found is not None and found.outcome == "found"


async def test_a_bare_number_after_the_bot_asked_for_it_is_looked_up() -> None:
    orders = tool(store_api([]))
    asked = await orders.answer(msg("Has my order shipped yet? I'm ada@example.com"))
    assert asked is not None and asked.text.startswith(ASK_NUMBER)
    found = await orders.answer(msg("it's 123456"))
    assert found is not None and found.outcome == "found"


async def test_a_number_that_cannot_be_an_order_number_is_said_so_then_the_right_one_found() -> (
    None
):
    # It was "What is your order number?" as if the customer had given none.
    seen: list[dict[str, object]] = []
    orders = tool(store_api(seen))
    asked = await orders.answer(msg("Where is my order 10042? I'm ada@example.com"))
    assert asked is not None and asked.outcome == "asked"
    assert asked.text.startswith(ASK_NUMBER) and "10042 isn't one of ours" in asked.text
    assert seen == []
    again = await orders.answer(msg("sorry, 1004200"))
    assert again is not None and "1004200 isn't one of ours" in again.text
    found = await orders.answer(msg("123456"))
    assert found is not None and found.outcome == "found"


async def test_the_conversation_sent_by_the_client_is_read_too() -> None:
    history = [
        HistoryTurn(role="user", text="where is my order? ada@example.com"),
        HistoryTurn(role="assistant", text=f"{ASK_NUMBER} It has six digits."),
    ]
    answer = await tool(store_api([])).answer(msg("123456", "fresh", history=history))
    assert answer is not None and answer.outcome == "found"


async def test_lookups_are_rate_limited_per_session() -> None:
    seen: list[dict[str, object]] = []
    orders = tool(store_api(seen), limit="2 per minute")
    texts = [f"order #1000{n:02d} me@example.com" for n in range(3)]
    outcomes = [(await orders.answer(msg(t))).outcome for t in texts]  # type: ignore[union-attr]
    assert outcomes == ["not_found", "not_found", "rate_limited"]
    assert len(seen) == 2
    other = await orders.answer(msg("order #123456 ada@example.com", "another-session"))
    assert other is not None and other.outcome == "found"


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
        lambda r: httpx.Response(401, json={"error": {"code": "unauthorized", "message": "-"}}),
        lambda r: httpx.Response(200, text="<html>not json</html>"),
        lambda r: httpx.Response(200, json={"number": "123456", "status": "lost"}),
    ],
    ids=["refused", "timeout", "5xx", "token", "garbage", "off-contract"],
)
async def test_a_failing_store_gets_an_honest_cannot_look_it_up(handle: object) -> None:
    answer = await tool(httpx.MockTransport(handle)).answer(  # type: ignore[arg-type]
        msg("#123456 ada@example.com")
    )
    assert answer is not None and answer.outcome == "unavailable"
    assert answer.text.startswith("I can't reach our order system right now")
    assert "shipped" not in answer.text and "lost" not in answer.text


async def test_messages_about_other_things_are_left_alone() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the store must not be called")

    orders = tool(httpx.MockTransport(never))
    for text in ("What is your return policy?", "How do I cancel my order?", "my zip is 123456"):
        assert await orders.answer(msg(text)) is None


async def test_after_a_rebalance_the_conversation_comes_from_memory() -> None:
    asked: list[str] = []

    async def recent(message: UserMessage) -> list[HistoryTurn]:
        asked.append(message.session_id)
        return [
            HistoryTurn(role="user", text="Has my order shipped? ada@example.com"),
            HistoryTurn(role="assistant", text=f"{ASK_NUMBER} It has six digits."),
        ]

    orders = OrderStatusTool(
        StoreClient("http://store.test", transport=store_api([])), recent=recent
    )
    answer = await orders.answer(msg("123456", "taken-over"))
    assert answer is not None and answer.outcome == "found"
    # Known now: memory is not asked again for this session, nor for unrelated messages.
    await orders.answer(msg("What is your return policy?", "other"))
    await orders.answer(msg("order #123456", "taken-over"))
    assert asked == ["taken-over"]
