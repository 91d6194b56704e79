"""Reading documents: Markdown, HTML (and Confluence pages), plain text and PDF.

Every format becomes a `Document`: a title, where it came from, and its sections, each
with the path of headings above it. Chunking works on sections, so a chunk never mixes
two topics and always knows its place in the document ("Shipping > Canada").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bs4 import BeautifulSoup, Tag
from markdown_it import MarkdownIt

# Fixed namespace for document ids: changing it would orphan every ingested chunk.
DOCUMENT_NAMESPACE = uuid.UUID("0b7e4f0c-3a1d-5c62-8f5e-9d2a7c4b1e60")

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES

_BLOCK_TAGS = (
    "p", "div", "li", "tr", "br", "pre", "blockquote", "dt", "dd", "table", "ul", "ol",
    "section", "article", "td", "th",
)  # fmt: skip
_HEADING = re.compile(r"^h([1-6])$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_SPACES = re.compile(r"[ \t\u00a0]+")


def document_id(root: str, key: str) -> str:
    """The stable id of the document `key` of `root` (a relative path, a page id)."""
    return str(uuid.uuid5(DOCUMENT_NAMESPACE, f"{root}\n{key}"))


class DocumentError(ValueError):
    """A file that cannot be read as a document; the message says why."""


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path (the document title first)."""

    path: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    """One document to ingest, with what identifies it across runs."""

    root: str  # what it was ingested as part of: a folder, a file, a Confluence space
    key: str  # its name within the root: a relative path, a page id
    title: str
    source: str  # file path or page URL, shown with every chunk
    url: str | None
    sections: Sequence[Section] = field(default_factory=tuple)

    @property
    def doc_id(self) -> str:
        """Stable id of the document within its root."""
        return document_id(self.root, self.key)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything stored of the document changes."""
        digest = hashlib.sha256()
        for part in (self.title, self.source, self.url or ""):
            digest.update(part.encode() + b"\0")
        for section in self.sections:
            digest.update(" > ".join(section.path).encode() + b"\0" + section.text.encode() + b"\0")
        return digest.hexdigest()


def clean_text(text: str) -> str:
    """Collapse runs of spaces, trim lines and keep at most one blank line between blocks."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# --- Markdown -----------------------------------------------------------------------------


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` pairs of a leading `---` block, and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("'\"")
    return meta, text[match.end() :]


def markdown_sections(text: str, fallback_title: str) -> tuple[str, str | None, list[Section]]:
    """Title, URL (from front matter) and heading sections of a Markdown text.

    Headings are found by a real Markdown parser, so a `#` inside a code block is not one;
    section bodies keep their Markdown (lists, emphasis), which both people and models read.
    """
    meta, body = parse_front_matter(text)
    lines = body.splitlines()
    headings: list[tuple[int, int, int, str]] = []  # (start line, end line, level, text)
    tokens = MarkdownIt("commonmark").parse(body)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            level = int(token.tag[1])
            headings.append((token.map[0], token.map[1], level, tokens[i + 1].content.strip()))
    title = meta.get("title") or next((h[3] for h in headings if h[2] == 1), fallback_title)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []  # open headings (level, text) below the title

    def add(path: tuple[str, ...], start: int, end: int) -> None:
        content = clean_text("\n".join(lines[start:end]))
        if content:
            sections.append(Section(path, content))

    first = headings[0][0] if headings else len(lines)
    add((title,), 0, first)
    for n, (_start, end, level, heading) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        if not (level == 1 and heading == title):  # the title heading is already the root
            stack.append((level, heading))
        following = headings[n + 1][0] if n + 1 < len(headings) else len(lines)
        add((title, *(h for _, h in stack)), end, following)
    return title, meta.get("url") or None, sections


# --- HTML ---------------------------------------------------------------------------------


def html_sections(html: str, fallback_title: str) -> tuple[str, str | None, list[Section]]:
    """Title, canonical URL and heading sections of an HTML page.

    Understands Confluence: its HTML export (`#main-content`, titles "Space : Page") and
    the storage format the REST API returns (`ac:` macros, whose parameters are not text).
    """
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(["script", "style", "nav", "header", "footer", "ac:parameter"]):
        tag.decompose()
    title = _html_title(soup) or fallback_title
    canonical = soup.find("link", rel="canonical")
    url = (
        str(canonical.get("href")) if isinstance(canonical, Tag) and canonical.get("href") else None
    )
    root = soup.find(id="main-content") or soup.find("main") or soup.find("article")
    root = root or soup.body or soup
    marks: list[tuple[int, str]] = []
    for heading in root.find_all(_HEADING):
        level = int(heading.name[1])
        marks.append((level, clean_text(heading.get_text(" "))))
        heading.replace_with(f"\n\x00{len(marks) - 1}\x00\n")
    for block in root.find_all(_BLOCK_TAGS):
        block.insert_before("\n")
        block.append("\n")
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    path: tuple[str, ...] = (title,)
    buffer: list[str] = []

    def flush() -> None:
        content = clean_text("\n".join(buffer))
        if content:
            sections.append(Section(path, content))
        buffer.clear()

    for line in root.get_text().splitlines():
        if line.startswith("\x00") and line.endswith("\x00"):
            flush()
            level, name = marks[int(line.strip("\x00"))]
            while stack and stack[-1][0] >= level:
                stack.pop()
            if name and not (level == 1 and name == title):
                stack.append((level, name))
            path = (title, *(h for _, h in stack))
        else:
            buffer.append(line)
    flush()
    return title, url, sections


def _html_title(soup: BeautifulSoup) -> str | None:
    title_text = soup.find(id="title-text")  # Confluence export: the page title alone
    if title_text is not None:
        return clean_text(title_text.get_text(" ")) or None
    if soup.title and soup.title.string:
        title = clean_text(soup.title.string)
        if soup.find(id="main-content") is not None and " : " in title:
            title = title.split(" : ", 1)[1]  # Confluence export: "Space : Page"
        return title or None
    h1 = soup.find("h1")
    return clean_text(h1.get_text(" ")) or None if h1 is not None else None


# --- PDF and text -------------------------------------------------------------------------


def pdf_sections(path: Path) -> tuple[str, list[Section]]:
    """Title (metadata or file name) and one section per page with text."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        meta_title = reader.metadata.title if reader.metadata else None
        title = clean_text(str(meta_title or "")) or _nice_name(path)
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = clean_text(page.extract_text() or "")
            if text:
                sections.append(Section((title, f"page {number}"), text))
    except PdfReadError as exc:
        raise DocumentError(f"not a readable PDF: {exc}") from exc
    except Exception as exc:
        # pypdf raises more than its own errors on hostile or unusual files (an unsupported
        # encryption is a NotImplementedError): one such file must not end the run.
        raise DocumentError(f"not a readable PDF: {type(exc).__name__}: {exc}") from exc
    return title, sections


def _nice_name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


# --- Files --------------------------------------------------------------------------------


MAX_FILE_BYTES = 20 * 1024 * 1024
"""Larger files are reported as failures, not read (a PDF parser can take a lot of memory)."""


def load_file(path: Path, *, root: str, key: str, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """Read one file as a document; raises `DocumentError` with the reason otherwise.

    The document's URL is the one it declares (front matter `url:`, a canonical link) or
    none: a local path is no link a person can follow, and would show the machine's folders.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type {suffix or '(none)'!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise DocumentError(f"larger than {max_bytes // (1024 * 1024)} MiB ({size} bytes)")
    url: str | None = None
    if suffix in PDF_SUFFIXES:
        title, sections = pdf_sections(path)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
        except OSError as exc:
            raise DocumentError(f"cannot read: {exc.strerror or exc}") from exc
        if suffix in MARKDOWN_SUFFIXES:
            title, url, sections = markdown_sections(text, _nice_name(path))
        elif suffix in HTML_SUFFIXES:
            title, url, sections = html_sections(text, _nice_name(path))
        else:
            title = _nice_name(path)
            body = clean_text(text)
            sections = [Section((title,), body)] if body else []
    if not sections:
        raise DocumentError("no text found")
    return Document(
        root=root,
        key=key,
        title=title,
        source=str(path),
        url=url,
        sections=tuple(sections),
    )


def discover(path: Path) -> Iterator[Path]:
    """The supported files under `path` (itself, if a file), sorted, hidden ones skipped.

    Symbolic links inside the folder are not followed: a link could point anywhere on the
    machine (its keys, other users' files) and put it in the knowledge base.
    """
    if path.is_file():
        yield path
        return
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path).parts
        if any(part.startswith(".") for part in relative):
            continue
        if _through_link(path, relative):
            continue
        if candidate.is_file() and candidate.suffix.lower() in SUPPORTED_SUFFIXES:
            yield candidate


def _through_link(root: Path, relative: tuple[str, ...]) -> bool:
    """True when the path or a folder on its way from `root` is a symbolic link."""
    current = root
    for part in relative:
        current = current / part
        if current.is_symlink():
            return True
    return False
