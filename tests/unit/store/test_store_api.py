"""The store API on a real SQLite database (in a temporary folder), through FastAPI's client."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.store_openapi import as_yaml
from tidings.store.api import create_app
from tidings.store.catalogue import Links
from tidings.store.db import Database
from tidings.store.models import Order
from tidings.store.seed import ensure_sample_data, read_catalogue
from tidings.store.settings import StoreSettings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.create_tables()
    with database.session() as session:
        ensure_sample_data(session)
    yield database
    database.close()


def client(db: Database, **settings: object) -> TestClient:
    app = create_app(db, StoreSettings(**settings), Links("https://shop.test"))  # type: ignore[arg-type]
    return TestClient(app)


def orders(db: Database) -> list[Order]:
    with db.session() as session:
        return list(session.scalars(select(Order).order_by(Order.number)))


def test_the_openapi_document_in_docs_is_the_codes() -> None:
    written = (ROOT / "docs/store-api.yaml").read_text()
    assert written == as_yaml(), "regenerate: python tests/store_openapi.py > docs/store-api.yaml"


def test_the_catalogue_has_300_books_in_the_knowledge_bases_categories() -> None:
    books = read_catalogue()
    assert len(books) >= 300 and len({b.book_id for b in books}) == len(books)
    kb = (resources.files("tidings.memory") / "sample_kb" / "catalogue.md").read_text()
    sentence = re.search(r"organised in categories: (.+?)\. Fiction is", kb, re.S)
    assert sentence is not None
    kb_categories = {c.strip() for c in re.split(r",|\band\b", " ".join(sentence[1].split()))}
    used = Counter(c.category for b in books for c in b.categories)
    assert set(used) == kb_categories - {""}
    assert min(used.values()) >= 20
    assert all(b.description and b.formats and b.price_cents > 0 for b in books)


def test_sample_orders_cover_every_status_the_same_way_on_every_install(
    db: Database, tmp_path: Path
) -> None:
    first = orders(db)
    assert Counter(o.status for o in first) == {
        s: 6 for s in ("placed", "paid", "shipped", "delivered", "cancelled", "back_ordered")
    }
    for order in first:
        assert re.fullmatch(r"\d{6}", order.number) and order.lines
        assert bool(order.tracking_number) == (order.status in ("shipped", "delivered"))
        assert bool(order.carrier) == bool(order.tracking_number)
    again = Database(f"sqlite:///{tmp_path / 'again.db'}")
    again.create_tables()
    with again.session() as session:
        ensure_sample_data(session)
    second = orders(again)
    again.close()
    key = lambda o: (o.number, o.customer_email, o.status, o.tracking_number)  # noqa: E731
    assert [key(o) for o in first] == [key(o) for o in second]
    # A restart keeps what is there.
    with db.session() as session:
        assert ensure_sample_data(session) == (0, 0)


def test_an_order_is_shown_only_with_its_proof_and_misses_look_alike(db: Database) -> None:
    api = client(db)
    order = next(o for o in orders(db) if o.customer_subject)
    mine = api.post(
        "/api/orders/lookup", json={"number": order.number, "email": order.customer_email.upper()}
    )
    assert mine.status_code == 200 and mine.json()["status"] == order.status
    by_login = api.post(
        "/api/orders/lookup", json={"number": order.number, "customer": order.customer_subject}
    )
    assert by_login.status_code == 200
    wrong = api.post("/api/orders/lookup", json={"number": order.number, "email": "e@x.org"})
    unknown = api.post("/api/orders/lookup", json={"number": "000001", "email": "e@x.org"})
    assert wrong.status_code == unknown.status_code == 404
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": {
                "code": "order_not_found",
                "message": "no order with this number and this account or e-mail",
            }
        }
    )


@pytest.mark.parametrize(
    "body",
    [{"number": "123456"}, {"number": "12345", "email": "a@b.co"}, {"number": "123456", "x": 1}],
    ids=["no-proof", "short-number", "unknown-field"],
)
def test_bad_lookups_get_a_422_with_a_stable_code(db: Database, body: dict[str, object]) -> None:
    answer = client(db).post("/api/orders/lookup", json=body)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"


def test_books_are_filtered_by_every_constraint(db: Database) -> None:
    api = client(db)
    found = api.get(
        "/api/books",
        params={"category": "Mystery & Thriller", "max_price": 15, "in_stock": "true"},
    ).json()
    assert found["total"] == len(found["books"]) > 0
    for book in found["books"]:
        assert "Mystery & Thriller" in book["categories"] and book["price"] <= 15
        assert book["in_stock"] and book["url"] == f"https://shop.test/books/{book['book_id']}"
    sales = api.get("/api/books", params={"limit": 5}).json()["books"]
    assert len(sales) == 5
    christie = api.get("/api/books", params={"author": "christie", "format": "ebook"}).json()
    assert christie["books"] and all(
        "Christie" in b["author"] and "ebook" in b["formats"] for b in christie["books"]
    )
    assert api.get("/api/books", params={"category": "Poetry"}).status_code == 422
    book = found["books"][0]
    assert api.get(f"/api/books/{book['book_id']}").json() == book
    assert api.get("/api/books/9999999999999").json()["error"]["code"] == "book_not_found"
    page = api.get(f"/books/{book['book_id']}")
    assert page.status_code == 200 and book["title"].replace("'", "&#x27;") in page.text


def test_categories_and_their_pages(db: Database) -> None:
    api = client(db)
    listed = api.get("/api/categories").json()["categories"]
    assert len(listed) == 13 and all(c["books"] > 0 for c in listed)
    mystery = next(c for c in listed if c["name"] == "Mystery & Thriller")
    assert mystery["url"] == "https://shop.test/categories/mystery-thriller"
    assert api.get("/categories/mystery-thriller").status_code == 200
    assert api.get("/categories/poetry").status_code == 404


def test_with_a_token_the_api_needs_it(db: Database) -> None:
    api = client(db, api_token="t" * 40)
    assert api.get("/api/categories").json()["error"]["code"] == "unauthorized"
    ok = api.get("/api/categories", headers={"Authorization": "Bearer " + "t" * 40})
    assert ok.status_code == 200
    assert api.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://store:pw@db:5432/store", "postgresql+psycopg://store:pw@db:5432/store"),
        ("postgresql://store:pw@db/store", "postgresql+psycopg://store:pw@db/store"),
        ("sqlite:////data/store/store.db", "sqlite:////data/store/store.db"),
    ],
)
def test_postgres_urls_use_psycopg_3(url: str, expected: str) -> None:
    assert StoreSettings(database_url=url).database_url == expected
