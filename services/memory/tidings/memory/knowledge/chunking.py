"""Cutting documents into chunks that follow the headings, with a little overlap.

A chunk never crosses a heading: each section is chunked on its own, paragraph by
paragraph, up to `max_chars`. When a section needs several chunks, each one starts with
the end of the previous one (`overlap_chars`), so a sentence cut at a border is still
whole in one of them. Every chunk keeps the section's title path, which is also embedded
with its text: "Shipping > Canada" says what a short paragraph is about.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from tidings.memory.knowledge.documents import Document

# Fixed namespace for chunk point ids (per document id and chunk number).
CHUNK_NAMESPACE = uuid.UUID("5d3c8a1e-7b2f-5e94-a6c0-41f8d2b7e913")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, ready to embed and store."""

    doc_id: str
    index: int
    path: tuple[str, ...]
    text: str

    @property
    def title(self) -> str:
        """The title path, e.g. 'Shipping > International shipping > Canada'."""
        return " > ".join(self.path)

    @property
    def point_id(self) -> str:
        """Deterministic Qdrant point id."""
        return str(uuid.uuid5(CHUNK_NAMESPACE, f"{self.doc_id}:{self.index}"))

    def embedding_text(self) -> str:
        """What is embedded: the title path, then the text."""
        return f"{self.title}\n{self.text}"


def chunk_document(document: Document, *, max_chars: int, overlap_chars: int) -> list[Chunk]:
    """The document's chunks, in reading order."""
    if max_chars <= overlap_chars:
        raise ValueError("max_chars must be larger than overlap_chars")
    chunks: list[Chunk] = []
    for section in document.sections:
        for text in split_text(section.text, max_chars=max_chars, overlap_chars=overlap_chars):
            chunks.append(Chunk(document.doc_id, len(chunks), section.path, text))
    return chunks


def split_text(text: str, *, max_chars: int, overlap_chars: int) -> list[str]:
    """Pieces of at most about `max_chars`, cut between paragraphs (or sentences, or words)."""
    units = [u for p in re.split(r"\n\s*\n", text) for u in _fit(p.strip(), max_chars) if u]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if current and size + len(unit) + 2 > max_chars:
            pieces.append("\n\n".join(current))
            tail = _tail(pieces[-1], overlap_chars)
            current, size = ([tail], len(tail)) if tail else ([], 0)
        current.append(unit)
        size += len(unit) + 2
    if current:  # never only an overlap: a flush is always followed by a unit
        pieces.append("\n\n".join(current))
    return pieces


def _fit(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph as units no longer than `max_chars`: sentences, then words if needed."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    units: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            units.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if units and len(units[-1]) + len(sentence) + 1 <= max_chars:
            units[-1] = f"{units[-1]} {sentence}"
        elif sentence:
            units.append(sentence)
    return units


def _tail(text: str, overlap_chars: int) -> str:
    """The end of `text`, at most `overlap_chars` long, starting at a word."""
    if overlap_chars <= 0:
        return ""
    if len(text) <= overlap_chars:
        return text
    tail = text[-overlap_chars:]
    space = tail.find(" ")
    return tail[space + 1 :].strip() if space >= 0 else tail.strip()
