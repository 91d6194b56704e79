"""The store's HTTP API (FastAPI): the contract a real store implements (docs/store-api.yaml).

- `GET /api/books`: books filtered by category, author, title, format, price and stock,
  best sellers first (or by price, or title).
- `GET /api/books/{book_id}`, `GET /api/categories`.
- `POST /api/orders/lookup`: an order's status for the caller who proves it is theirs (the
  account that placed it, or the e-mail on the order); an unknown number and a wrong proof
  get the same 404, so numbers cannot be probed.
- `GET /books/{book_id}`, `GET /categories/{slug}`: small HTML pages, the links' targets.
- `GET /health`, `/ready`, `/metrics`.

With STORE_API_TOKEN the /api routes need `Authorization: Bearer <token>`. Errors are
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request

from tidings.common import store_api as contract
from tidings.common.http_errors import ApiError, install_error_handlers
from tidings.common.ops import ReadyCheck, ops_app
from tidings.common.service_auth import bearer_matches
from tidings.common.store_api import (
    BookList,
    Category,
    CategoryList,
    ErrorOut,
    Format,
    OrderLookup,
    OrderStatus,
    SortOrder,
)
from tidings.store import catalogue, orders, pages
from tidings.store.db import Database
from tidings.store.models import Book
from tidings.store.settings import StoreSettings

BookId = Annotated[str, Path(pattern=r"^\d{13}$", description="ISBN-13.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such resource."}
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A body that is not JSON."},
    401: {"model": ErrorOut, "description": "STORE_API_TOKEN is set and was not sent."},
    422: {"model": ErrorOut, "description": "Invalid parameters."},
}


def create_app(
    db: Database, settings: StoreSettings, links: catalogue.Links, ready: ReadyCheck | None = None
) -> FastAPI:
    """The store app; `links` starts the book and category links."""

    async def database_ready() -> dict[str, bool]:
        return {"database": db.ping()}

    def authorized(request: Request) -> None:
        token = settings.api_token
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <STORE_API_TOKEN>")

    app = FastAPI(
        title="Tidings bookstore API",
        version="1",
        summary="Orders and catalogue of the store; the bot's tools call it.",
        description=(
            "The contract between Tidings' responder and the store's own system. The bundled "
            "backend implements it on SQLite or Postgres; a real store implements it instead."
        ),
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api = APIRouter(prefix="/api", dependencies=[Depends(authorized)], responses=_ERRORS)

    @api.get("/books", response_model=BookList, summary="Find books")
    def list_books(
        category: Annotated[Category | None, Query(description="Main or other category.")] = None,
        author: Annotated[str | None, Query(max_length=200, description="Part of it.")] = None,
        title: Annotated[str | None, Query(max_length=300, description="Part of it.")] = None,
        format: Annotated[Format | None, Query()] = None,
        min_price: Annotated[float | None, Query(ge=0, le=1_000_000)] = None,
        max_price: Annotated[float | None, Query(ge=0, le=1_000_000)] = None,
        in_stock: Annotated[bool | None, Query(description="Only books in stock.")] = None,
        sort: Annotated[SortOrder, Query(description="bestselling: last week's sales.")] = (
            "bestselling"
        ),
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> BookList:
        query = catalogue.BookQuery(
            category, author, title, format, min_price, max_price, in_stock, sort, limit, offset
        )
        with db.session() as session:
            total, books = catalogue.find_books(session, query)
            return BookList(total=total, books=[catalogue.book_out(b, links) for b in books])

    @api.get(
        "/books/{book_id}", response_model=contract.Book, responses=_NOT_FOUND, summary="A book"
    )
    def get_book(book_id: BookId) -> contract.Book:
        with db.session() as session:
            book = session.get(Book, book_id)
            if book is None:
                raise ApiError(404, "book_not_found", "no book with this ISBN in the catalogue")
            return catalogue.book_out(book, links)

    @api.get("/categories", response_model=CategoryList, summary="The categories")
    def list_categories() -> CategoryList:
        with db.session() as session:
            return CategoryList(categories=catalogue.categories(session, links))

    @api.post(
        "/orders/lookup",
        response_model=OrderStatus,
        responses={404: {"model": ErrorOut, "description": "Unknown number or wrong proof."}},
        summary="An order's status, for its owner",
    )
    def look_up_order(lookup: OrderLookup) -> OrderStatus:
        with db.session() as session:
            found = orders.look_up(session, lookup)
        if found is None:
            raise ApiError(
                404, "order_not_found", "no order with this number and this account or e-mail"
            )
        return found

    app.include_router(api)
    app.include_router(pages.router(db, links))
    install_error_handlers(app)
    app.router.routes.extend(ops_app("store", ready or database_ready).routes)
    return app
