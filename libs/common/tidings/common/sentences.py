"""Cutting text into sentences: knowledge passages (Markdown) and generated answers alike.

The memory service scores each sentence of a retrieved passage against the question, and
the responder checks a generated answer sentence by sentence; both must cut the same way.
List items and numbered steps are sentences of their own, Markdown emphasis is dropped,
and abbreviations that end in a dot ("p.m.", "e.g.", "U.S.") and decimals ("$4.99") do not
end a sentence.
"""

from __future__ import annotations

import re

# A dot after these (case-insensitive) does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"a.m", "p.m", "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "no", "st", "u.s", "approx"}
)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_EMPHASIS = re.compile(r"(\*\*|__|(?<![\w*])\*(?!\s)|(?<!\w)_(?!\s)|`)")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9$])")
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)\.$")


def clean_markdown(line: str) -> str:
    """A line without its list marker, heading marks and emphasis."""
    line = _HEADING.sub("", line)
    line = _LIST_MARKER.sub("", line)
    return _EMPHASIS.sub("", line).strip()


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, stripped; list items count as sentences."""
    sentences: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            sentences.extend(_split_paragraph(" ".join(paragraph)))
            paragraph.clear()

    for raw in text.splitlines():
        if not raw.strip():
            flush()
            continue
        if _LIST_MARKER.match(raw) or _HEADING.match(raw):
            flush()
            paragraph.append(clean_markdown(raw))
            if _HEADING.match(raw):
                flush()
            continue
        paragraph.append(clean_markdown(raw))
    flush()
    return [s for s in sentences if s]


def _split_paragraph(paragraph: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for found in _BOUNDARY.finditer(paragraph):
        before = paragraph[start : found.start()].rstrip("\"')]")
        word = _WORD_BEFORE.search(before)
        if word and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
            # "2 p.m. Pacific time" goes on, unless the next word starts a new sentence.
            nxt = paragraph[found.end() :].split(" ", 1)[0]
            if not nxt[:1].isupper() or nxt in {"Pacific", "Eastern", "Central", "Mountain"}:
                continue
        pieces.append(paragraph[start : found.start()].strip())
        start = found.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]
