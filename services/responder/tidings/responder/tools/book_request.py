"""What a recommendation request asks for: category, author, price, format, "like X".

Pure functions over the message (unit-tested). `parse_book_request` returns None for a
message that asks for no book, so the rest of the answer engine gets it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

# "By" a time is a deadline, not an author: "I need the book by Friday", "by the 12th". Only
# words no author is called by (not "May", "June", "April", "Jan"; no short weekday names).
_WHEN = (
    r"(?:(?:accident|mistake|error|today|tonight|tomorrow|then|now|next|this|the end|end of|"
    r"noon|midnight|christmas|easter|thanksgiving|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|the weekend|feb(?:ruary)?|march|july|sept?(?:ember)?|oct(?:ober)?|"
    r"nov(?:ember)?|dec(?:ember)?)\b|(?:the )?\d)"
)
# Phrases that ask for a suggestion. "Do you have books by X?" is one too: the knowledge
# base cannot answer it, the catalogue can.
_ASKS = re.compile(
    r"\b(?:recommend\w*|suggest\w*|what (?:should|could|can) i read|what to read|"
    r"(?:best|top)[\s-]?sell(?:ers?|ing)?\b"
    r"(?!\s+list)|most popular|popular (?:books?|titles?|right now|this week)|trending|"
    rf"do you have (?:any |some )?(?:good )?(?:books?|novels?|cookbooks?|titles?) "
    rf"(?:by (?!{_WHEN})|about|on|like|for)|books? by (?!{_WHEN})|books? about "
    r"(?!(?:accident|mistake|error)\b))",
    re.IGNORECASE,
)
# "Something like Dune" asks for books, unless the message is about store business
# ("something like this but delivered faster?").
_LIKE_ASKS = re.compile(
    r"\b(?:(?:something|anything|books?|novels?|one|stuff|more)\s+(?:like|similar to)|"
    r"similar to)",
    re.IGNORECASE,
)
# A taste ("I loved Dune") asks for books only with a word for more of them ("what next",
# "anything similar"): "I loved the book but it arrived damaged" asks for a replacement.
_TASTE = re.compile(r"\b(?:i|we) (?:really )?(?:liked|loved|enjoyed)\b", re.IGNORECASE)
_MORE = re.compile(r"\b(?:next|else|similar|more|another|other)\b", re.IGNORECASE)
# Asking for something that needs a book word to be about books: "looking for a good
# thriller", not "give me a $50 credit".
_WEAK_ASKS = re.compile(
    r"\b(?:looking for (?:a|an|some|good|something|books?)|(?:give|show|find|get) me|"
    r"i(?:'d| would) like (?:a|an|some)|any good|good|great|gift for)\b",
    re.IGNORECASE,
)
_BOOK_WORDS = re.compile(
    r"\b(?:books?|novels?|reads?|titles?|audio-?books?|e-?books?|cookbooks?)\b", re.I
)
# We sell new books only: rare and used books are the knowledge base's question.
_NOT_OURS = re.compile(r"\b(?:rare|used|first editions?|second[\s-]hand|signed)\b", re.I)
# Store business, not a request for books ("I would like to return a book").
_SERVICE = re.compile(
    r"\b(?:return\w*|refund\w*|exchange\w*|cancel\w*|damaged|shipp?\w*|deliver\w*|"
    r"track\w*|pay\w*|order (?:it|them) in|website)\b",
    re.I,
)
# "A cookbook for beginners", "some cheap thrillers": a bare request for a kind of book.
_BARE_REQUEST = re.compile(r"^\s*(?:an?|some|any)\s+", re.IGNORECASE)

# Checked in this order; a matched phrase is removed before the next is tried ("science
# fiction" is not Science, "historical fiction" is History).
CATEGORY_WORDS: tuple[tuple[str, str], ...] = (
    (
        "Science Fiction & Fantasy",
        r"sci[\s-]?fi|science[\s-]fiction|fantasy|space opera|"
        r"dystopi\w*|cyberpunk|dragons?|wizards?|aliens?|robots?",
    ),
    ("Comics & Graphic Novels", r"comics?|graphic novels?|manga"),
    ("Young Adult", r"young adult|\bya\b|teens?|teenagers?|teenage"),
    (
        "Children's Books",
        r"children'?s?|kids?|picture books?|bedtime|toddlers?|"
        r"(?:my|a) (?:\d+|two|three|four|five|six|seven|eight)[\s-]year[\s-]old",
    ),
    (
        "Mystery & Thriller",
        r"myster(?:y|ies)|thrillers?|crime|detectives?|whodunn?its?|"
        r"suspense|spy|spies|espionage",
    ),
    ("Romance", r"romance|romantic|love stor(?:y|ies)|rom[\s-]?coms?"),
    ("Biography", r"biograph\w*|autobiograph\w*|memoirs?|life stor(?:y|ies)"),
    ("History", r"history|historical|histories|ancient rome|world war|medieval"),
    ("Cooking", r"cook\w*|recipes?|baking|bakers?|kitchen|vegetarian|vegan|culinary"),
    ("Travel", r"travel\w*|guide ?books?|hiking|backpacking"),
    (
        "Business",
        r"business|management|leadership|start-?ups?|entrepreneur\w*|invest\w*|"
        r"finance|money|marketing|negotiat\w*|productivity",
    ),
    ("Science", r"science|physics|biology|chemistry|astronomy|cosmos|evolution|nature"),
    ("Fiction", r"fiction|novels?|literary|classics?"),
)
_CATEGORY_PATTERNS = [
    (name, re.compile(rf"\b(?:{words})\b", re.I)) for name, words in CATEGORY_WORDS
]

_FORMATS = (
    ("audiobook", re.compile(r"\baudio[\s-]?books?\b|\baudio\b|\blisten\w*", re.I)),
    ("ebook", re.compile(r"\be-?books?\b|\bepub\b|\bdigital\b|\be-?readers?\b", re.I)),
    ("hardcover", re.compile(r"\bhard[\s-]?(?:cover|back)s?\b", re.I)),
    ("paperback", re.compile(r"\bpaper[\s-]?backs?\b|\bsoft[\s-]?cover\b", re.I)),
)

_AMOUNT = r"\$?\s*(\d{1,4}(?:\.\d{1,2})?)\s*(?:\$|dollars?|usd|bucks)?"
_BETWEEN = re.compile(rf"\bbetween\s+{_AMOUNT}\s+and\s+{_AMOUNT}", re.I)
_MAX = re.compile(
    rf"\b(?:under|below|less than|cheaper than|at most|max(?:imum)?|up to|no more than|"
    rf"within|for|budget(?: of)?|<)\s*{_AMOUNT}(?!\s*(?:year|yr|page|%))",
    re.I,
)
_OR_LESS = re.compile(rf"{_AMOUNT}\s+or\s+(?:less|under|below|cheaper)", re.I)
_MIN = re.compile(rf"\b(?:over|above|more than|at least|>)\s*{_AMOUNT}", re.I)

_AUTHOR = re.compile(
    rf"\b(?:by(?!\s+(?i:{_WHEN}))|from|author)\s+"
    r"((?:[A-Z][\w.'-]*|[a-z][\w'-]+)(?:\s+(?:[A-Z][\w.'-]*|[a-z][\w'-]+)){0,3})"
)
_LIKE = re.compile(
    r"(?:(?<!would )(?<!'d )(?<!\bi )\blike(?!\s+(?:to|a|an|some|this|that)\b)|\bsimilar to|"
    "\\b(?:i|we) (?:really )?(?:liked|loved|enjoyed))\\s+[\"'\u201c\u2018]?(.+?)[\"'\u201d\u2019]?"
    r"(?=\s*(?:[?!,;]|\.(?:\s|$)|$|\s+(?:but|under|below|for|that|which|by|in|with|and|or|"
    r"please|as an?|on)\b))",
    re.I,
)
_STOP_AUTHOR = re.compile(
    r"\s+(?:under|below|for|in|on|with|that|which|and|or|please|as|paperback|hardcover|"
    r"e-?books?|audio\w*|is|are)\b.*$",
    re.I,
)
_BESTSELLERS = re.compile(
    r"\bbest[\s-]?sell\w*|\btop[\s-]sell\w*|\bmost popular\b|\bpopular\b|\btrending\b", re.I
)


@dataclass(frozen=True)
class BookRequest:
    """The constraints a recommendation must meet; None / empty: no constraint."""

    category: str | None = None
    author: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    format: str | None = None
    like: str | None = None
    bestsellers: bool = False
    topic: str = ""
    categories_named: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """The constraints in words: "Mystery & Thriller, under $15.00, paperback"."""
        parts = []
        if self.category:
            parts.append(self.category)
        if self.author:
            parts.append(f"by {self.author}")
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"between ${self.min_price:.2f} and ${self.max_price:.2f}")
        elif self.max_price is not None:
            parts.append(f"up to ${self.max_price:.2f}")
        elif self.min_price is not None:
            parts.append(f"over ${self.min_price:.2f}")
        if self.format:
            parts.append({"ebook": "e-book"}.get(self.format, self.format))
        return ", ".join(parts)


def is_book_request(text: str) -> bool:
    """True when `text` asks for a book suggestion."""
    if _NOT_OURS.search(text):
        return False
    if _ASKS.search(text):
        return True
    service = bool(_SERVICE.search(text))
    if not service and (_LIKE_ASKS.search(text) or (_TASTE.search(text) and _MORE.search(text))):
        return True
    about_books = bool(_BOOK_WORDS.search(text)) or any(
        p.search(text) for _, p in _CATEGORY_PATTERNS
    )
    if not about_books or service:
        return False
    return bool(_WEAK_ASKS.search(text)) or (
        bool(_BARE_REQUEST.match(text)) and len(text.split()) <= 10
    )


def _price(text: str) -> tuple[float | None, float | None]:
    between = _BETWEEN.search(text)
    if between:
        low, high = sorted((float(between.group(1)), float(between.group(2))))
        return low, high
    high_match = _MAX.search(text) or _OR_LESS.search(text)
    low_match = _MIN.search(text)
    return (
        float(low_match.group(1)) if low_match else None,
        float(high_match.group(1)) if high_match else None,
    )


def parse_book_request(text: str) -> BookRequest | None:
    """The request's constraints, or None when `text` asks for no book."""
    if not is_book_request(text):
        return None
    rest = text
    like_match = _LIKE.search(rest)
    like = None
    if like_match and not _BESTSELLERS.fullmatch(like_match.group(1).strip()):
        like = like_match.group(1).strip().strip("\"'\u201c\u201d\u2018\u2019").strip() or None
        rest = rest.replace(like_match.group(0), " ")
    author = None
    author_match = _AUTHOR.search(rest)
    if author_match:
        author = _STOP_AUTHOR.sub("", author_match.group(1)).strip(" .?!,") or None
        if author:
            rest = rest.replace(author_match.group(0), " ")
    min_price, max_price = _price(rest)
    for pattern in (_BETWEEN, _MAX, _OR_LESS, _MIN):
        rest = pattern.sub(" ", rest)
    book_format = next((name for name, p in _FORMATS if p.search(rest)), None)
    named: list[str] = []
    scan = rest
    for name, pattern in _CATEGORY_PATTERNS:
        if pattern.search(scan):
            named.append(name)
            scan = pattern.sub(" ", scan)
    return BookRequest(
        category=named[0] if named else None,
        author=author,
        min_price=min_price,
        max_price=max_price,
        format=book_format,
        like=like,
        bestsellers=bool(_BESTSELLERS.search(text)) and like is None,
        topic=" ".join(rest.split()),
        categories_named=tuple(named),
    )


# A short reply to a list of suggestions that asks for other ones: "anything cheaper?",
# "any others?", "in paperback?", "under $10?".
_CHEAPER = re.compile(r"\b(?:cheaper|less expensive|more affordable|lower[\s-]priced?)\b", re.I)
_OTHERS = re.compile(
    r"\bany(?:thing|one)? else\s*[?.!]*\s*$|\bany others\b|^\s*others\s*[?.!]*\s*$|"
    r"\b(?:other (?:ones?|options?|books?|titles?|suggestions?)|"
    r"more (?:options?|books?|titles?|suggestions?|like (?:that|these|those|this))|"
    r"another (?:one|book|title)|(?:show|give) me more|different ones?)\b",
    re.I,
)
_REFINEMENT_WORDS = 8


@dataclass(frozen=True)
class Refinement:
    """A follow-up to suggestions already given: the new request, and whether the books
    already shown must be left out ("anything else?")."""

    request: BookRequest
    other_books: bool


def parse_refinement(
    previous: BookRequest, text: str, shown_prices: Sequence[float]
) -> Refinement | None:
    """What a short follow-up to `previous`'s suggestions asks for, or None when it is no
    such follow-up. "Cheaper" is below the cheapest book shown; a format or a price range
    replaces the previous one; the rest of the request stays."""
    if len(text.split()) > _REFINEMENT_WORDS or _SERVICE.search(text) or _NOT_OURS.search(text):
        return None
    cheaper = bool(_CHEAPER.search(text)) and bool(shown_prices)
    others = bool(_OTHERS.search(text))
    min_price, max_price = _price(text)
    book_format = next((name for name, p in _FORMATS if p.search(text)), None)
    if not (cheaper or others or book_format or min_price is not None or max_price is not None):
        return None
    request = previous
    if cheaper:
        request = replace(request, max_price=round(min(shown_prices) - 0.01, 2), min_price=None)
    if min_price is not None or max_price is not None:
        request = replace(request, min_price=min_price, max_price=max_price)
    if book_format:
        request = replace(request, format=book_format)
    return Refinement(request, other_books=cheaper or others)
