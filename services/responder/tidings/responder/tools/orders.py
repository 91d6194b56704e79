"""Order status: the real status of an order, told only to whoever proves it is theirs.

A message that names an order number (`#123456`, or six digits in a message about an
order), asks where an order is, or answers the tool's own question (the number, the
e-mail address) is this tool's. The proof is the signed-in customer (the message's JWT
subject, `user`) or the e-mail address on the order, given anywhere in the conversation;
without either the tool asks for the e-mail first. The store decides (`POST
/api/orders/lookup`) and answers an unknown number and a wrong proof alike, and so does
this tool: the same words for both, so order numbers cannot be probed. Lookups are rate
limited per session and per user. A store that is down, slow or off contract gets "I can't
reach the order system", never a guessed status.
"""

from __future__ import annotations

import time
from datetime import date

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tidings.common.events import UserMessage
from tidings.common.logging import get_logger
from tidings.common.store_api import OrderStatus, StoreClient, StoreUnavailableError
from tidings.responder.tools.base import CONTACT, Outcome, ToolAnswer, counted
from tidings.responder.tools.notes import (
    Awaiting,
    OrderNotes,
    Recent,
    SessionNotes,
    notes_from_history,
)
from tidings.responder.tools.order_text import (
    asks_order_status,
    find_email,
    find_order_number,
    find_wrong_order_number,
)

log = get_logger(__name__)

TOOL = "order_status"
ASK_NUMBER = "I can check that for you. What is your order number?"
ASK_EMAIL = "To check order #"
_ASKS: dict[str, Awaiting] = {ASK_NUMBER: "number", ASK_EMAIL: "email"}


def _maybe_ours(text: str) -> bool:
    """Cheap first look: could the message be about an order at all (a number, an e-mail
    address, a status question)? Only then are the conversation's notes read."""
    return bool(
        find_order_number(text, expected=True)
        or find_wrong_order_number(text, expected=True)
        or find_email(text)
        or asks_order_status(text)
    )


def _day(value: date) -> str:
    return f"{value:%A}, {value:%B} {value.day}"


def status_text(order: OrderStatus) -> str:
    """The answer for an order its owner asked about: only what the store said."""
    number = f"#{order.number}"
    eta = order.estimated_delivery
    titles = ", ".join(
        item.title if item.quantity == 1 else f"{item.title} (x{item.quantity})"
        for item in order.items
    )
    if order.status == "placed":
        text = f"Order {number} has been placed and is waiting for payment."
    elif order.status == "paid":
        text = f"Order {number} is paid and being prepared for shipping."
    elif order.status == "shipped":
        text = f"Order {number} has shipped"
        if order.carrier:
            text += f" with {order.carrier}"
        text += "."
        if order.tracking_number:
            text += f" Tracking number: {order.tracking_number}."
    elif order.status == "delivered":
        text = f"Order {number} was delivered on {_day(order.updated_at.date())}."
        if order.carrier and order.tracking_number:
            text += f" ({order.carrier} tracking number: {order.tracking_number}.)"
    elif order.status == "cancelled":
        text = f"Order {number} was cancelled on {_day(order.updated_at.date())}."
    else:
        text = (
            f"Order {number} is back-ordered: a book in it is out of stock, and we send it "
            "as soon as the publisher restocks."
        )
        if eta:
            text += f" The restock is expected by {_day(eta)}."
        eta = None
    if eta and order.status in ("placed", "paid", "shipped"):
        text += f" Estimated delivery: {_day(eta)}."
    if titles:
        text += f" It contains: {titles}."
    return text


def not_found_text(number: str, *, by_email: bool) -> str:
    """The same words for an unknown number and a wrong proof."""
    proof = "the e-mail address you gave" if by_email else "your account"
    text = (
        f"I couldn't find an order #{number} that matches {proof}. Please check the number "
        "in your order confirmation e-mail"
    )
    if by_email:
        return text + " and the address you used at checkout."
    return text + ", or tell me the e-mail address you used for the order."


class OrderStatusTool:
    """Answers order-status messages from the store; one per responder."""

    name = TOOL

    def __init__(
        self,
        store: StoreClient,
        *,
        limit: str = "5 per 10 minutes",
        notes: SessionNotes | None = None,
        recent: Recent | None = None,
    ) -> None:
        self._store = store
        self._notes = notes or SessionNotes()
        self._recent = recent
        self._limit: RateLimitItem = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def answer(self, message: UserMessage) -> ToolAnswer | None:
        """The answer when the message is about an order's status, else None."""
        started = time.monotonic()
        found = await self._answer(message)
        if found is None:
            return None
        return counted(found, time.monotonic() - started)

    async def _notes_for(self, message: UserMessage) -> OrderNotes:
        if message.history is not None:
            return notes_from_history(message.history, _ASKS)
        session = message.session_id
        # Memory is asked only when the message needs what came before it: a number or an
        # e-mail alone, or a number without proof ("Where is #123456? me@x.org" does not).
        complete = find_order_number(message.text) is not None and (
            message.user is not None or find_email(message.text) is not None
        )
        if self._recent is not None and not complete and not self._notes.known(session):
            turns = await self._recent(message)
            if turns:
                return self._notes.put(session, notes_from_history(turns, _ASKS))
        return self._notes.get(session)

    async def _answer(self, message: UserMessage) -> ToolAnswer | None:
        text = message.text
        if not _maybe_ours(text):
            return None
        notes = await self._notes_for(message)
        awaiting, notes.awaiting = notes.awaiting, None
        given_email = find_email(text)
        if given_email:
            notes.email = given_email
        number = find_order_number(text, expected=awaiting == "number")
        if number is None and given_email and awaiting == "email" and notes.number:
            number = notes.number
        if number is None:
            wrong = find_wrong_order_number(text, expected=awaiting == "number")
            if wrong is None and not asks_order_status(text):
                return None
            notes.awaiting = "number"
            ask = (
                ASK_NUMBER + " It has six digits (like #123456) and is in your confirmation e-mail."
            )
            if wrong is not None:
                # Not as if no number was given. (Still ASK_NUMBER first: the conversation
                # read back after a rebalance tells what the bot asked by that prefix.)
                ask = (
                    f"{ASK_NUMBER} {wrong} isn't one of ours: our order numbers have six "
                    "digits (like #123456) and are in your confirmation e-mail."
                )
            if message.user is None and notes.email is None:
                ask += " Please also tell me the e-mail address you used for the order."
            return ToolAnswer(TOOL, ask, "asked")
        notes.number = number
        if message.user is None and notes.email is None:
            notes.awaiting = "email"
            return ToolAnswer(
                TOOL,
                f"{ASK_EMAIL}{number}, I need the e-mail address you used for the order, so "
                "that only you can see it. What is it?",
                "asked",
            )
        return await self._look_up(message, notes, number)

    async def _look_up(self, message: UserMessage, notes: OrderNotes, number: str) -> ToolAnswer:
        keys = [("session", message.session_id)]
        if message.user:
            keys.append(("user", message.user))
        if not all(self._limiter.hit(self._limit, *key) for key in keys):
            log.info("order lookups rate limited", session=message.session_id)
            return ToolAnswer(
                TOOL,
                "You have asked about several orders in a short time. Please wait a few "
                f"minutes and try again, or contact {CONTACT}.",
                "rate_limited",
            )
        outcome: Outcome
        try:
            order = await self._store.look_up_order(
                number, email=notes.email, customer=message.user
            )
        except StoreUnavailableError as exc:
            log.warning("order system unavailable", error=str(exc)[:300])
            return ToolAnswer(
                TOOL,
                f"I can't reach our order system right now, so I can't tell you the status of "
                f"order #{number}. Please try again in a few minutes, or contact {CONTACT}.",
                "unavailable",
            )
        if order is None:
            outcome = "not_found"
            if notes.email is None:
                notes.awaiting = "email"  # a signed-in customer may have ordered as a guest
            return ToolAnswer(
                TOOL, not_found_text(number, by_email=notes.email is not None), outcome
            )
        return ToolAnswer(TOOL, status_text(order), "found")
