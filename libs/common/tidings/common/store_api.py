"""The store's HTTP API (docs/store-api.yaml): its bodies and the client the responder uses.

The bundled bookstore backend (`tidings store`) serves these models; a real store serves the
same contract. `StoreClient` raises `StoreUnavailableError` for anything but an answer
(unreachable, slow, 5xx, a refused credential, a body that is not the contract), so the tools
can say the store cannot be asked right now instead of guessing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from tidings.common.service_auth import bearer_header

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


class Book(BaseModel):
    """A book of the catalogue."""

    model_config = ConfigDict(extra="ignore")

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
    books: list[Book]


class CategoryInfo(BaseModel):
    """A category and what it holds."""

    model_config = ConfigDict(extra="ignore")

    name: Category
    slug: str
    books: int = Field(ge=0, description="Books whose main or other category this is.")
    in_stock: int = Field(ge=0)
    min_price: float | None = Field(description="Cheapest book in the category.")
    url: str = Field(description="The category's page in the shop.")


class CategoryList(BaseModel):
    """`GET /api/categories`."""

    categories: list[CategoryInfo]


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

    model_config = ConfigDict(extra="ignore")

    book_id: str
    title: str
    quantity: int = Field(ge=1)


class OrderStatus(BaseModel):
    """An order's status, for its owner."""

    model_config = ConfigDict(extra="ignore")

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
    """The body of every error."""

    error: ErrorBody


class StoreUnavailableError(Exception):
    """The store did not answer usefully (down, slow, failing, or off contract)."""


_M = TypeVar("_M", bound=BaseModel)


class StoreClient:
    """Async client of the store API; create once and `aclose()` it."""

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | None = None,
        timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            headers=bearer_header(token),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def look_up_order(
        self, number: str, *, email: str | None = None, customer: str | None = None
    ) -> OrderStatus | None:
        """The order when it exists and the proof fits; None for an unknown number and a
        wrong proof alike."""
        body = OrderLookup(number=number, email=email, customer=customer)
        response = await self._send("POST", "/api/orders/lookup", json=body.model_dump())
        if response.status_code == 404:
            return None
        return self._parse(response, OrderStatus)

    async def find_books(self, params: dict[str, str | int | float | bool]) -> BookList:
        """`GET /api/books` with these filters."""
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        return self._parse(await self._send("GET", "/api/books", params=query), BookList)

    async def categories(self) -> CategoryList:
        return self._parse(await self._send("GET", "/api/categories"), CategoryList)

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"{method} {path}: {exc!r}") from exc

    @staticmethod
    def _parse(response: httpx.Response, model: type[_M]) -> _M:
        if response.status_code != 200:
            raise StoreUnavailableError(
                f"{response.request.method} {response.request.url.path}: "
                f"HTTP {response.status_code}"
            )
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise StoreUnavailableError(f"off-contract answer: {str(exc)[:200]}") from exc
