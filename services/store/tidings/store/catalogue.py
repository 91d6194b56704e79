"""Catalogue queries: books by category, author, title, price, format and stock."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tidings.common import store_api as contract
from tidings.store.models import CATEGORIES, Book, BookCategory, BookFormat


@dataclass
class Links:
    """Where the shop's pages are: the base of every book and category link."""

    base: str

    def book(self, book_id: str) -> str:
        return f"{self.base}/books/{book_id}"

    def category(self, name: str) -> str:
        return f"{self.base}/categories/{slug(name)}"


@dataclass(frozen=True)
class BookQuery:
    """Filters of `GET /api/books`; None: no filter."""

    category: str | None = None
    author: str | None = None
    title: str | None = None
    format: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    sort: str = "bestselling"
    limit: int = 50
    offset: int = 0


def slug(category: str) -> str:
    """`Children's Books` -> `childrens-books`; `Mystery & Thriller` -> `mystery-thriller`."""
    return re.sub(r"[^a-z0-9]+", "-", category.lower().replace("'", "")).strip("-")


def category_by_slug(value: str) -> str | None:
    return next((c for c in CATEGORIES if slug(c) == value), None)


def _like(value: str) -> str:
    escaped = value.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(query: BookQuery) -> Select[Book]:
    statement = select(Book)
    if query.category:
        statement = statement.where(
            Book.book_id.in_(
                select(BookCategory.book_id).where(BookCategory.category == query.category)
            )
        )
    if query.format:
        statement = statement.where(
            Book.book_id.in_(select(BookFormat.book_id).where(BookFormat.format == query.format))
        )
    if query.author:
        statement = statement.where(func.lower(Book.author).like(_like(query.author), "\\"))
    if query.title:
        statement = statement.where(func.lower(Book.title).like(_like(query.title), "\\"))
    if query.min_price is not None:
        statement = statement.where(Book.price_cents >= round(query.min_price * 100))
    if query.max_price is not None:
        statement = statement.where(Book.price_cents <= round(query.max_price * 100))
    if query.in_stock is not None:
        statement = statement.where(Book.stock > 0 if query.in_stock else Book.stock == 0)
    return statement


def find_books(session: Session, query: BookQuery) -> tuple[int, list[Book]]:
    """The number of matching books, and the asked page of them."""
    statement = _filtered(query)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    order = {
        "bestselling": (Book.sales_last_week.desc(), Book.title),
        "price": (Book.price_cents, Book.title),
        "title": (Book.title, Book.book_id),
    }[query.sort]
    page = session.scalars(statement.order_by(*order).limit(query.limit).offset(query.offset))
    return total, list(page)


def book_out(book: Book, links: Links) -> contract.Book:
    return contract.Book.model_validate(
        {
            "book_id": book.book_id,
            "title": book.title,
            "author": book.author,
            "categories": [c.category for c in book.categories],
            "formats": [f.format for f in book.formats],
            "price": book.price_cents / 100,
            "stock": book.stock,
            "in_stock": book.stock > 0,
            "description": book.description,
            "url": links.book(book.book_id),
        }
    )


def categories(session: Session, links: Links) -> list[contract.CategoryInfo]:
    """Every category with its book count, books in stock and cheapest price."""
    rows = session.execute(
        select(
            BookCategory.category,
            func.count(Book.book_id),
            func.sum((Book.stock > 0).cast(Book.stock.type)),
            func.min(Book.price_cents),
        )
        .join(Book, Book.book_id == BookCategory.book_id)
        .group_by(BookCategory.category)
    ).all()
    found = {name: (count, stocked, cheapest) for name, count, stocked, cheapest in rows}
    result = []
    for name in CATEGORIES:
        count, stocked, cheapest = found.get(name, (0, 0, None))
        result.append(
            contract.CategoryInfo.model_validate(
                {
                    "name": name,
                    "slug": slug(name),
                    "books": count,
                    "in_stock": stocked or 0,
                    "min_price": None if cheapest is None else cheapest / 100,
                    "url": links.category(name),
                }
            )
        )
    return result
