"""Recommendations: up to three books of the store's catalogue that fit the request.

The constraints (category, author, price, format; in stock unless digital) go to the
store as filters (`GET /api/books`), so every book named is one the store returned. The
candidates are then ranked by meaning: the request (or, for "something like X", the
catalogue's description of X; when X is an author's name, not a title, of their books)
against each book's title and description, as vectors of the memory service's model
(`POST /embed`, the model that embeds the knowledge base). Book vectors are cached by book
and text, so the catalogue is embedded once per responder.
Without memory, the store's own order (last week's best sellers) ranks them.

Why the responder ranks and not the store: the store's contract stays plain filtering that
any shop system can serve, and the model stays where it already is (memory) instead of in
the store. The candidates per request are bounded (RESPONDER_RECOMMEND_CANDIDATES).

Nothing fits: say so, and point to the nearest category (the one asked for, or the one of
the closest book by meaning).

A short follow-up to the books just suggested ("anything cheaper?", "any others?", "in
paperback?") asks again with the previous request, changed as it says, leaving out the
books shown for "cheaper" and "others". What was suggested is kept per session by this
replica (bounded, 30 minutes); a session taken over after a rebalance has no such memory and
the follow-up goes on to the answer engine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tidings.common.events import UserMessage
from tidings.common.logging import get_logger
from tidings.common.store_api import Book, CategoryInfo, StoreClient, StoreUnavailableError
from tidings.responder.tools.base import CONTACT, ToolAnswer, counted
from tidings.responder.tools.book_request import (
    BookRequest,
    parse_book_request,
    parse_refinement,
)
from tidings.responder.tools.notes import SessionStore

log = get_logger(__name__)

TOOL = "recommendations"
MAX_BOOKS = 3
DIGITAL = frozenset({"ebook", "audiobook"})
# Same main category as the book the customer liked: a nudge, not a filter.
SAME_CATEGORY_BONUS = 0.1
Embed = Callable[[list[str]], Awaitable[list[list[float]] | None]]


def book_text(book: Book) -> str:
    """What a book is embedded as."""
    return f"{book.title} by {book.author} ({', '.join(book.categories)}): {book.description}"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    # The memory service's vectors are unit length.
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Taste:
    """What "something like X" names in the catalogue: a book, or an author's books."""

    books: list[Book]
    author: str | None = None  # X is an author's name, not a title

    def category(self) -> str | None:
        """The main category of the books (the commonest first category)."""
        firsts = Counter(b.categories[0] for b in self.books if b.categories)
        return firsts.most_common(1)[0][0] if firsts else None


@dataclass(frozen=True)
class Shown:
    """The last suggestions of a session: the request, the books named, and every book
    named since the customer last asked afresh ("any others?" twice shows no book again)."""

    request: BookRequest
    books: list[Book]
    seen: frozenset[str]


def _mean(vectors: Sequence[Sequence[float]]) -> list[float]:
    """The unit-length mean of unit vectors."""
    summed = [math.fsum(column) for column in zip(*vectors, strict=True)]
    norm = math.sqrt(math.fsum(x * x for x in summed)) or 1.0
    return [x / norm for x in summed]


def book_line(book: Book) -> str:
    """One list item, one line in the widget: linked title, author and price (the formats
    and the rest are on the book's page)."""
    return f"- [{book.title}]({book.url}) by {book.author}, ${book.price:.2f}"


def pick(ranked: Sequence[Book], count: int = MAX_BOOKS) -> list[Book]:
    """The first `count` books, at most one per author while others are left."""
    chosen: list[Book] = []
    authors: set[str] = set()
    for book in ranked:
        if book.author not in authors:
            chosen.append(book)
            authors.add(book.author)
        if len(chosen) == count:
            return chosen
    rest = [b for b in ranked if b not in chosen]
    return chosen + rest[: count - len(chosen)]


class VectorCache:
    """Book vectors by (book id, embedded text), filled through `embed` in batches.

    Small batches: each /embed call stays well inside the memory client's timeout on a busy
    CPU, and a request's own query embedding is not stuck behind the whole catalogue."""

    def __init__(self, embed: Embed, *, batch: int = 32, max_books: int = 50_000) -> None:
        self._embed = embed
        self._batch = batch
        self._max = max_books
        self._vectors: dict[tuple[str, str], list[float]] = {}
        self._lock = asyncio.Lock()

    async def vectors(self, books: Sequence[Book]) -> dict[str, list[float]] | None:
        """Each book's vector, or None when the model cannot be asked."""
        keys = {book.book_id: (book.book_id, book_text(book)) for book in books}
        async with self._lock:  # concurrent requests embed each missing book once
            missing = [key for key in keys.values() if key not in self._vectors]
            for start in range(0, len(missing), self._batch):
                chunk = missing[start : start + self._batch]
                vectors = await self._embed([text for _, text in chunk])
                if vectors is None or len(vectors) != len(chunk):
                    return None
                if len(self._vectors) + len(chunk) > self._max:
                    self._vectors.clear()
                self._vectors.update(zip(chunk, vectors, strict=True))
        return {book_id: self._vectors[key] for book_id, key in keys.items()}


class RecommendationTool:
    """Suggests books of the catalogue; one per responder."""

    name = TOOL

    def __init__(
        self, store: StoreClient, embed: Embed | None, *, max_candidates: int = 500
    ) -> None:
        self._store = store
        self._embed = embed
        self._cache = VectorCache(embed) if embed is not None else None
        self._max_candidates = max_candidates
        self._shown: SessionStore[Shown] = SessionStore()

    async def warm(
        self, *, attempts: int = 30, retry_s: float = 5.0, batch: int = 32, pause_s: float = 0.2
    ) -> bool:
        """Embed the catalogue ahead of the first request (the store and memory may still be
        starting: tried `attempts` times). True once the vectors are cached.

        A batch at a time with a pause between: the memory service embeds the answer
        engine's questions meanwhile, and a request for books may take the cache's lock."""
        if self._cache is None:
            return False
        for _ in range(attempts):
            try:
                books = (await self._store.find_books({"limit": self._max_candidates})).books
            except StoreUnavailableError:
                books = []
            done = bool(books)
            for start in range(0, len(books), batch):
                if await self._cache.vectors(books[start : start + batch]) is None:
                    done = False
                    break
                await asyncio.sleep(pause_s)
            if done:
                log.info("catalogue embedded", books=len(books))
                return True
            await asyncio.sleep(retry_s)
        return False

    async def answer(self, message: UserMessage) -> ToolAnswer | None:
        """The recommendation when the message asks for a book, else None."""
        request = parse_book_request(message.text)
        leave_out: frozenset[str] = frozenset()
        if request is None:
            shown = self._shown.get(message.session_id)
            refined = (
                parse_refinement(shown.request, message.text, [b.price for b in shown.books])
                if shown is not None
                else None
            )
            if shown is None or refined is None:
                return None
            request = refined.request
            if refined.other_books:
                leave_out = shown.seen
        started = time.monotonic()
        try:
            found = await self._recommend(request, leave_out, message.session_id)
        except StoreUnavailableError as exc:
            log.warning("catalogue unavailable", error=str(exc)[:300])
            found = ToolAnswer(
                TOOL,
                "I can't reach our catalogue right now, so I can't suggest books. Please try "
                f"again in a few minutes, or contact {CONTACT}.",
                "unavailable",
            )
        return counted(found, time.monotonic() - started)

    def _filters(self, request: BookRequest) -> dict[str, str | int | float | bool]:
        filters: dict[str, str | int | float | bool] = {
            "limit": self._max_candidates,
            "sort": "bestselling",
        }
        if request.format not in DIGITAL:
            filters["in_stock"] = True  # printed copies we can send now
        for key in ("category", "author", "format", "min_price", "max_price"):
            value = getattr(request, key)
            if value is not None:
                filters[key] = value
        return filters

    async def _taste(self, like: str) -> Taste | None:
        """The catalogue's book with this title (exact first, then the shortest containing
        it); else, when it is an author's name ("something like Agatha Christie"), their
        best-selling books; None when the catalogue has neither."""
        found = await self._store.find_books({"title": like, "limit": 20, "sort": "title"})
        if found.books:
            exact = [b for b in found.books if b.title.lower() == like.lower()]
            return Taste([exact[0] if exact else min(found.books, key=lambda b: len(b.title))])
        by = await self._store.find_books({"author": like, "limit": 20, "sort": "bestselling"})
        if not by.books:
            return None
        names = Counter(b.author for b in by.books).most_common()
        return Taste(by.books, author=names[0][0] if len(names) == 1 else like)

    async def _recommend(
        self, request: BookRequest, leave_out: frozenset[str], session_id: str
    ) -> ToolAnswer:
        liked = await self._taste(request.like) if request.like else None
        candidates = (await self._store.find_books(self._filters(request))).books
        candidates = [b for b in candidates if b.book_id not in leave_out]
        if liked is not None:
            # Something *like* X: not X again (nor, for an author, their own books).
            known = {b.book_id for b in liked.books}
            candidates = [b for b in candidates if b.book_id not in known]
        if not candidates:
            return await self._nothing_fits(request)
        ranked = candidates
        if liked is not None:
            # Without the model: the liked books' category first, best sellers within it.
            category = liked.category()
            ranked = sorted(candidates, key=lambda b: b.categories[:1] != [category])
        if not request.bestsellers and self._cache is not None and self._embed is not None:
            ranked = await self._by_meaning(request, liked, candidates) or ranked
        books = pick(ranked)
        self._shown.put(session_id, Shown(request, books, leave_out | {b.book_id for b in books}))
        return ToolAnswer(TOOL, self._text(request, liked, books), "found")

    async def _by_meaning(
        self, request: BookRequest, liked: Taste | None, candidates: list[Book]
    ) -> list[Book] | None:
        assert self._cache is not None and self._embed is not None
        vectors = await self._cache.vectors([*candidates, *(liked.books if liked else [])])
        if vectors is None:
            return None
        category = None
        if liked is not None:
            # The liked books' own vectors (already cached), averaged for an author.
            target = _mean([vectors[b.book_id] for b in liked.books])
            category = liked.category()
        else:
            queried = await self._embed([request.topic[:2000] or "a good book"])
            if not queried:
                return None
            target = queried[0]

        def score(book: Book) -> float:
            bonus = SAME_CATEGORY_BONUS if category and book.categories[:1] == [category] else 0.0
            return _cosine(target, vectors[book.book_id]) + bonus

        return sorted(candidates, key=score, reverse=True)

    def _text(self, request: BookRequest, liked: Taste | None, books: list[Book]) -> str:
        fits = request.describe()
        if liked is not None:
            if liked.author is not None:
                head = f"If you like books by {liked.author}, you may like"
            else:
                head = f"If you liked {liked.books[0].title}, you may like"
            head += f" these ({fits}):" if fits else ":"
        elif request.bestsellers:
            head = "Our best sellers this week"
            head += f" ({fits}):" if fits else ":"
        else:
            count = "a book" if len(books) == 1 else f"{len(books)} books"
            head = f"Here {'is' if len(books) == 1 else 'are'} {count} from our catalogue"
            head += f" that fit ({fits}):" if fits else " you may like:"
        if request.like and liked is None:
            head = "I couldn't find that title or author in our catalogue. " + head
        return head + "\n\n" + "\n".join(book_line(b) for b in books)

    async def _nothing_fits(self, request: BookRequest) -> ToolAnswer:
        categories = (await self._store.categories()).categories
        nearest = await self._nearest_category(request, categories)
        fits = request.describe() or "your request"
        text = f"I couldn't find a book in our catalogue that fits ({fits})."
        if nearest is not None:
            text += f" The nearest category is [{nearest.name}]({nearest.url})"
            if nearest.min_price is not None:
                text += f", with {nearest.in_stock} books in stock from ${nearest.min_price:.2f}"
            text += "."
        return ToolAnswer(TOOL, text, "none")

    async def _nearest_category(
        self, request: BookRequest, categories: list[CategoryInfo]
    ) -> CategoryInfo | None:
        by_name = {c.name: c for c in categories}
        if request.category in by_name:
            return by_name[request.category]
        # The category of the closest book by meaning, whatever the other constraints.
        anything = (await self._store.find_books({"limit": self._max_candidates})).books
        ranked = await self._by_meaning(request, None, anything) if anything else None
        best = (ranked or anything)[:1]
        return by_name.get(best[0].categories[0]) if best else None
