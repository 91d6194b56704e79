"""Order lookups: an order is shown only to its owner."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tidings.common.store_api import OrderLookup, OrderStatus
from tidings.store.models import Order


def owns(order: Order, lookup: OrderLookup) -> bool:
    """True when the lookup proves the order is the caller's (account or e-mail)."""
    if lookup.customer is not None and order.customer_subject == lookup.customer:
        return True
    return (
        lookup.email is not None
        and order.customer_email.strip().lower() == lookup.email.strip().lower()
    )


def look_up(session: Session, lookup: OrderLookup) -> OrderStatus | None:
    """The order's status when it exists and is the caller's; None in every other case."""
    order = session.get(Order, lookup.number)
    if order is None or not owns(order, lookup):
        return None
    return OrderStatus.model_validate(
        {
            "number": order.number,
            "status": order.status,
            "placed_at": order.placed_at,
            "updated_at": order.updated_at,
            "carrier": order.carrier,
            "tracking_number": order.tracking_number,
            "estimated_delivery": order.estimated_delivery,
            "items": [
                {"book_id": line.book_id, "title": line.title, "quantity": line.quantity}
                for line in order.lines
            ],
        }
    )
