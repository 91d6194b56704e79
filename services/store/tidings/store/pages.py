"""The shop's pages the links point to: one per book and one per category (plain HTML)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from tidings.store import catalogue
from tidings.store.db import Database
from tidings.store.models import Book

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Bookstore</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _not_found() -> HTMLResponse:
    return _page("Not found", "<h1>Not found</h1>", 404)


def router(db: Database, links: catalogue.Links) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/books/{book_id}", response_class=HTMLResponse)
    def book_page(book_id: str) -> HTMLResponse:
        with db.session() as session:
            book = session.get(Book, book_id)
            if book is None:
                return _not_found()
            out = catalogue.book_out(book, links)
        stock = "In stock" if out.in_stock else "Out of stock: order now, we ship on restock"
        body = (
            f"<h1>{escape(out.title)}</h1><p>by {escape(out.author)}</p>"
            f"<p>{escape(out.description)}</p>"
            f"<p><strong>${out.price:.2f}</strong> - {escape(', '.join(out.formats))}</p>"
            f"<p>{stock}</p><p>{escape(' / '.join(out.categories))} - ISBN {out.book_id}</p>"
        )
        return _page(out.title, body)

    @pages.get("/categories/{slug}", response_class=HTMLResponse)
    def category_page(slug: str) -> HTMLResponse:
        name = catalogue.category_by_slug(slug)
        if name is None:
            return _not_found()
        with db.session() as session:
            _, books = catalogue.find_books(session, catalogue.BookQuery(category=name, limit=500))
            items = "".join(
                f'<li><a href="/books/{b.book_id}">{escape(b.title)}</a> by '
                f"{escape(b.author)} - ${b.price_cents / 100:.2f}</li>"
                for b in books
            )
        return _page(name, f"<h1>{escape(name)}</h1><ul>{items}</ul>")

    return pages
