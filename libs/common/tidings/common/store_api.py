"""The store API's request and response bodies: the contract in docs/store-api.yaml."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = Literal[
    "Fiction",
    "Mystery & Thriller",
    "Science Fiction & Fantasy",
    "Romance",
    "Biography",
    "History",
    "Science",
    "Business",
    "Cooking",
    "Travel",
    "Children's Books",
    "Young Adult",
    "Comics & Graphic Novels",
]
Format = Literal["paperback", "hardcover", "ebook", "audiobook"]
OrderStatusName = Literal["placed", "paid", "shipped", "delivered", "cancelled", "back_ordered"]
SortOrder = Literal["bestselling", "price", "title"]


class BookOut(BaseModel):
    """A book of the catalogue."""

    book_id: str = Field(description="ISBN-13.", examples=["9780001018136"])
    title: str
    author: str
    categories: list[Category] = Field(description="Main category first.")
    formats: list[Format]
    price: float = Field(description="Price in `currency`, two decimals.")
    currency: Literal["USD"] = "USD"
    stock: int = Field(ge=0, description="Printed copies in the warehouse.")
    in_stock: bool = Field(description="stock > 0.")
    description: str = Field(description="A short description (one or two sentences).")
    url: str = Field(description="The book's page in the shop.")


class BookList(BaseModel):
    """`GET /api/books`: the books that match every filter, in the asked order."""

    total: int = Field(ge=0, description="Matching books (before `limit`/`offset`).")
    books: list[BookOut]


class CategoryOut(BaseModel):
    """A category and what it holds."""

    name: Category
    slug: str
    books: int = Field(ge=0, description="Books whose main or other category this is.")
    in_stock: int = Field(ge=0)
    min_price: float | None = Field(description="Cheapest book in the category.")
    url: str = Field(description="The category's page in the shop.")


class CategoryList(BaseModel):
    """`GET /api/categories`."""

    categories: list[CategoryOut]


class OrderLookup(BaseModel):
    """`POST /api/orders/lookup`: an order number and a proof that the order is the caller's.

    The order is returned only when `customer` is the account that placed it or `email`
    is the address on the order; a wrong proof and an unknown number get the same 404.
    """

    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=r"^\d{6}$", description="The six-digit order number.")
    email: str | None = Field(
        default=None,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The e-mail address given at checkout (compared case-insensitively).",
    )
    customer: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The signed-in customer's account id (the chat's JWT subject).",
    )

    @model_validator(mode="after")
    def _needs_proof(self) -> OrderLookup:
        if self.email is None and self.customer is None:
            raise ValueError("give `email` or `customer`: the proof that the order is yours")
        return self


class OrderItem(BaseModel):
    """One line of an order."""

    book_id: str
    title: str
    quantity: int = Field(ge=1)


class OrderStatusOut(BaseModel):
    """An order's status, for its owner."""

    number: str
    status: OrderStatusName
    placed_at: datetime
    updated_at: datetime
    carrier: str | None = Field(description="For shipped and delivered orders.")
    tracking_number: str | None = Field(description="For shipped and delivered orders.")
    estimated_delivery: date | None = Field(
        description="Placed, paid and shipped orders: expected delivery day; back-ordered "
        "ones: when the publisher is expected to restock."
    )
    items: list[OrderItem]


class ErrorBody(BaseModel):
    """`{"error": {"code", "message"}}`: every 4xx/5xx of the API."""

    code: str = Field(description="Stable machine-readable code, e.g. `order_not_found`.")
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
