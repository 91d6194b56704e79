"""The sample data a fresh store starts with: the packaged catalogue and sample orders.

Both are deterministic: the catalogue is `data/books.csv` (312 books in the knowledge base's
13 categories), the orders come from a seeded random generator, so every install has the
same order numbers, owners and statuses (their dates count from the first start).
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from importlib import resources

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.store.models import (
    CATEGORIES,
    FORMATS,
    ORDER_STATUSES,
    Book,
    BookCategory,
    BookFormat,
    Order,
    OrderLine,
)

ORDER_SEED = 19
ORDERS_PER_STATUS = 6
# (JWT subject or None for guest checkout, e-mail address on the order)
CUSTOMERS = (
    ("user-ada", "ada@example.com"),
    ("user-grace", "grace@example.com"),
    ("user-alan", "alan@example.com"),
    ("user-katherine", "katherine@example.com"),
    (None, "guest.reader@example.org"),
    (None, "sam.jones@example.net"),
)
CARRIERS = (("UPS", "1Z{:016d}"), ("FedEx", "{:012d}"), ("USPS", "9400{:018d}"), ("DHL", "{:010d}"))


def read_catalogue() -> list[Book]:
    """The packaged catalogue as new `Book` rows."""
    raw = resources.files("tidings.store").joinpath("data/books.csv").read_text("utf-8")
    books = []
    for row in csv.DictReader(io.StringIO(raw)):
        categories = row["categories"].split(";")
        formats = row["formats"].split(";")
        unknown = [c for c in categories if c not in CATEGORIES] + [
            f for f in formats if f not in FORMATS
        ]
        if unknown:
            raise ValueError(f"books.csv: {row['title']!r} has unknown values {unknown}")
        books.append(
            Book(
                book_id=row["book_id"],
                title=row["title"],
                author=row["author"],
                price_cents=round(float(row["price"]) * 100),
                stock=int(row["stock"]),
                sales_last_week=int(row["sales_last_week"]),
                description=row["description"],
                categories=[BookCategory(category=c, position=i) for i, c in enumerate(categories)],
                formats=[BookFormat(format=f) for f in formats],
            )
        )
    return books


def sample_orders(books: list[Book], today: date) -> list[Order]:
    """A few dozen orders, `ORDERS_PER_STATUS` in every status, the same on every install."""
    rng = random.Random(ORDER_SEED)  # noqa: S311 - sample data, the same on every install
    numbers: set[str] = set()
    orders = []
    for index in range(ORDERS_PER_STATUS * len(ORDER_STATUSES)):
        status = ORDER_STATUSES[index % len(ORDER_STATUSES)]
        number = f"{rng.randint(100000, 999999)}"
        while number in numbers:
            number = f"{rng.randint(100000, 999999)}"
        numbers.add(number)
        # Every customer has orders in several statuses.
        subject, email = CUSTOMERS[(index + index // len(ORDER_STATUSES)) % len(CUSTOMERS)]
        placed_day = today - timedelta(days=rng.randint(1, 20))
        placed = datetime(placed_day.year, placed_day.month, placed_day.day, 10, tzinfo=UTC)
        order = Order(
            number=number,
            customer_email=email,
            customer_subject=subject,
            status=status,
            placed_at=placed,
            updated_at=placed + timedelta(days=1),
            carrier=None,
            tracking_number=None,
            estimated_delivery=None,
        )
        if status in ("placed", "paid", "shipped"):
            order.estimated_delivery = today + timedelta(days=rng.randint(2, 7))
        if status == "back_ordered":
            order.estimated_delivery = today + timedelta(days=rng.randint(14, 28))
        if status in ("shipped", "delivered"):
            carrier, pattern = CARRIERS[rng.randrange(len(CARRIERS))]
            order.carrier = carrier
            order.tracking_number = pattern.format(rng.randrange(10**9, 10**10))
        if status == "back_ordered":
            pool = [b for b in books if b.stock == 0] or books
        else:
            pool = [b for b in books if b.stock > 0]
        for line, book in enumerate(rng.sample(pool, rng.randint(1, 3))):
            order.lines.append(
                OrderLine(
                    line=line,
                    book_id=book.book_id,
                    title=book.title,
                    quantity=rng.randint(1, 2),
                    price_cents=book.price_cents,
                )
            )
        orders.append(order)
    return orders


def ensure_sample_data(session: Session, today: date | None = None) -> tuple[int, int]:
    """Fill empty tables with the sample data; returns (books added, orders added)."""
    added_books = added_orders = 0
    if not session.scalar(select(func.count()).select_from(Book)):
        session.add_all(read_catalogue())
        session.flush()
        added_books = session.scalar(select(func.count()).select_from(Book)) or 0
    if not session.scalar(select(func.count()).select_from(Order)):
        books = list(session.scalars(select(Book).order_by(Book.book_id)))
        orders = sample_orders(books, today or datetime.now(UTC).date())
        session.add_all(orders)
        added_orders = len(orders)
    return added_books, added_orders
