"""Order status: a message naming an order number is answered from the orders API.

`#123456` or a standalone six-digit number (as in the bookstore seed) calls
`GET {ORDERS_API_URL}/api/orders/{id}/status`, which answers `{"status": ..., "eta": ...}`
(`eta` optional). The answer only ever repeats what the API said: an unknown order gets a
polite "not found", and an API that is down, slow, failing or answering nonsense gets an
honest "cannot look it up right now" — never a made-up status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidings.common.logging import get_logger
from tidings.responder import metrics

log = get_logger(__name__)

TOOL = "order_status"
# Six digits not part of a longer number; an optional `#` in front.
_ORDER_NUMBER = re.compile(r"(?<![\w#])#?(\d{6})(?!\d)|#(\d{6})(?!\d)")
Outcome = Literal["found", "not_found", "unavailable"]


def find_order_number(text: str) -> str | None:
    """The first order number in `text` (six digits, optionally after `#`), or None."""
    found = _ORDER_NUMBER.search(text)
    if found is None:
        return None
    return found.group(1) or found.group(2)


class OrderStatus(BaseModel):
    """What the orders API returns; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    status: str = Field(min_length=1, max_length=200)
    eta: str | None = Field(default=None, max_length=200)


@dataclass(frozen=True)
class ToolAnswer:
    """A tool's answer text and how the lookup went."""

    tool: str
    text: str
    outcome: Outcome


class OrderStatusTool:
    """Looks order numbers up in the orders API; create once and `aclose()` it."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def answer(self, text: str) -> ToolAnswer | None:
        """The order-status answer when `text` names an order number, else None."""
        number = find_order_number(text)
        if number is None:
            return None
        outcome, reply = await self._look_up(number)
        metrics.TOOL_CALLS.labels(tool=TOOL, outcome=outcome).inc()
        return ToolAnswer(TOOL, reply, outcome)

    async def _look_up(self, number: str) -> tuple[Outcome, str]:
        try:
            response = await self._client.get(f"/api/orders/{number}/status")
        except httpx.HTTPError as exc:
            log.warning("orders API unreachable", order=number, error=repr(exc))
            return "unavailable", _unavailable(number)
        if response.status_code == 404:
            return "not_found", (
                f"I couldn't find an order with the number #{number}. Please check the number "
                "on your confirmation email and try again."
            )
        if response.status_code != 200:
            log.warning("orders API failed", order=number, status=response.status_code)
            return "unavailable", _unavailable(number)
        try:
            status = OrderStatus.model_validate_json(response.content)
        except ValidationError as exc:
            log.warning("orders API answered nonsense", order=number, error=str(exc)[:300])
            return "unavailable", _unavailable(number)
        reply = f"Order #{number} is {status.status.strip()}."
        if status.eta and status.eta.strip():
            reply += f" Estimated delivery: {status.eta.strip()}."
        return "found", reply


def _unavailable(number: str) -> str:
    return (
        f"I can't look up order #{number} right now. Please try again in a few minutes, or "
        "contact support@bookstore.com."
    )
