"""The store's tables (SQLAlchemy 2): books with their categories and formats, orders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, get_args

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tidings.common.store_api import Category, Format, OrderStatusName

# The contract's values (tidings.common.store_api), as tuples for the tables and checks.
CATEGORIES: Final = get_args(Category)
FORMATS: Final = get_args(Format)
ORDER_STATUSES: Final = get_args(OrderStatusName)


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"

    book_id: Mapped[str] = mapped_column(String(13), primary_key=True, comment="ISBN-13")
    title: Mapped[str] = mapped_column(String(300), index=True)
    author: Mapped[str] = mapped_column(String(200), index=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    sales_last_week: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text)
    categories: Mapped[list[BookCategory]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="BookCategory.position"
    )
    formats: Mapped[list[BookFormat]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="BookFormat.format"
    )


class BookCategory(Base):
    __tablename__ = "book_categories"

    book_id: Mapped[str] = mapped_column(ForeignKey("books.book_id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    # 0 is the book's main category.
    position: Mapped[int] = mapped_column(Integer, default=0)


class BookFormat(Base):
    __tablename__ = "book_formats"

    book_id: Mapped[str] = mapped_column(ForeignKey("books.book_id"), primary_key=True)
    format: Mapped[str] = mapped_column(String(20), primary_key=True, index=True)


class Order(Base):
    __tablename__ = "orders"

    number: Mapped[str] = mapped_column(String(6), primary_key=True)
    customer_email: Mapped[str] = mapped_column(String(320), index=True)
    # The login subject (JWT `sub`) of the account that placed it; None: guest checkout.
    customer_subject: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    carrier: Mapped[str | None] = mapped_column(String(50))
    tracking_number: Mapped[str | None] = mapped_column(String(50))
    estimated_delivery: Mapped[date | None] = mapped_column(Date)
    lines: Mapped[list[OrderLine]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OrderLine.line"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    order_number: Mapped[str] = mapped_column(ForeignKey("orders.number"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    book_id: Mapped[str] = mapped_column(ForeignKey("books.book_id"))
    title: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(Integer)
