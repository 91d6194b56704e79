"""The checkable facts of a text: amounts, numbers, e-mail addresses, URLs, phone numbers.

A support answer must not state a price, number, duration, date, address, e-mail, phone
number or URL that its sources do not. These are the claims that can be recognised by
their form; `facts()` finds them in any text and normalises them, so that "$12.99",
"12.99 dollars" and "USD 12.99" are one fact and "5-7" is the numbers 5 and 7.
Words that spell numbers ("thirty") are not recognised as facts; the grounding check
catches them as unsupported words instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tidings.common.words import normalize

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|co|us|uk|example)(?:/[^\s<>\"')\]]*)?\b"
)
_PHONE = re.compile(
    r"(?<![\w$.])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.-]\d{3,4}[\s.-]\d{3,4}(?![\w])"
)
_MONEY = re.compile(
    r"(?:(?:[a-z]{3}\s?)?[$€£]\s?\d[\d,]*(?:\.\d+)?)"
    r"|(?:\d[\d,]*(?:\.\d+)?\s?(?:dollars?|usd|cad|eur|euros?|gbp|pounds?|cents?)\b)"
)
_PERCENT = re.compile(r"\d+(?:\.\d+)?\s?(?:%|percent\b)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = frozenset(
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "fifteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "hundred",
        "thousand",
        "million",
        "half",
        "double",
        "triple",
    ]
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One checkable claim, as found and as compared."""

    kind: str  # money, percent, number, email, url, phone
    text: str
    key: str


def _number_key(text: str) -> str:
    digits = text.replace(",", "")
    if "." in digits:
        whole, _, frac = digits.partition(".")
        frac = frac.rstrip("0")
        return f"{whole}.{frac}" if frac else whole
    return digits


def facts(text: str) -> list[Fact]:
    """Every fact in `text`, in order of kind; a number inside an amount is not repeated."""
    lowered = normalize(text)
    found: list[Fact] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for kind, pattern in (
        ("email", _EMAIL),
        ("url", _URL),
        ("phone", _PHONE),
        ("money", _MONEY),
        ("percent", _PERCENT),
        ("number", _NUMBER),
    ):
        for match in pattern.finditer(lowered):
            if not free(match.start(), match.end()):
                continue
            raw = match.group(0)
            if kind in {"email", "url"}:
                key = raw.rstrip(".,;:").removeprefix("https://").removeprefix("http://")
                key = key.removeprefix("www.").rstrip("/")
            elif kind == "phone":
                key = re.sub(r"\D", "", raw)
            elif kind in {"money", "percent"}:
                number = _NUMBER.search(raw)
                key = _number_key(number.group(0)) if number else raw
            else:
                key = _number_key(raw)
            taken.append((match.start(), match.end()))
            found.append(Fact(kind, raw, key))
    return found


def number_words(text: str) -> set[str]:
    """Words that spell numbers ("thirty", "half")."""
    return {w for w in re.findall(r"[a-z]+", normalize(text)) if w in _NUMBER_WORDS}
