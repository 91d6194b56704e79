"""`tidings ingest` end to end on Qdrant local mode, with a fake embedding model.

Files and folders, the bundled sample, and a Confluence space served by a local HTTP
server that answers like Confluence's REST API (pagination included).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from tidings.memory import cli
from tidings.memory.knowledge import documents
from tidings.memory.knowledge.ingest import SAMPLE_ROOT

COLLECTION = "kb_test"


class FakeEmbedder:
    """Deterministic 8-d vectors from a hash of the text."""

    dimension = 8
    name = "fake-8d"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0 + b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in texts]


@pytest.fixture
def qdrant_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "qdrant"
    monkeypatch.setenv("QDRANT_PATH", str(path))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.setenv("MEMORY_KNOWLEDGE_COLLECTION", COLLECTION)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no wrapped paths
    monkeypatch.setattr(cli.Embedder, "load", classmethod(lambda *_, **__: FakeEmbedder()))
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    """`tidings ingest ARGS` (the `ingest` group as the CLI mounts it)."""
    return CliRunner().invoke(cli.ingest, list(args), catch_exceptions=False, env=env)


def chunks(path: Path) -> list[dict[str, Any]]:
    client = QdrantClient(path=str(path))
    try:
        points, _ = client.scroll(COLLECTION, limit=1000, with_payload=True)
    finally:
        client.close()
    return [dict(p.payload or {}) for p in points]


def summary(output: str) -> list[int]:
    """The five counts of the summary table's row: documents, chunks, skipped, deleted, failed."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) == 5 and all(c.isdigit() for c in cells):
            return [int(c) for c in cells]
    raise AssertionError(f"no summary row in:\n{output}")


def test_folder_ingest_then_reingest_updates_skips_and_removes(
    qdrant_path: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha\n\nFirst.\n\n## Part\n\nSecond.\n")
    (docs / "sub" / "b.html").write_text("<h1>Beta</h1><p>Bravo.</p>")
    (docs / "c.txt").write_text("Charlie.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    first = run(str(docs))

    assert first.exit_code == 1, first.output  # a failure is reported, the rest is stored
    assert summary(first.output) == [3, 4, 0, 0, 1]
    assert "broken.pdf" in first.output and "not a readable PDF" in first.output
    stored = chunks(qdrant_path)
    assert {c["title"] for c in stored} == {"Alpha", "Alpha > Part", "Beta", "c"}
    alpha = next(c for c in stored if c["title"] == "Alpha > Part")
    assert alpha["source"] == str((docs / "a.md").resolve())
    assert alpha["url"] is None  # a local path is no link to show users

    (docs / "a.md").write_text("# Alpha\n\nFirst, changed.\n")  # one chunk fewer now
    (docs / "sub" / "b.html").unlink()
    (docs / "broken.pdf").unlink()
    second = run(str(docs))

    assert second.exit_code == 0, second.output
    assert summary(second.output) == [1, 1, 1, 1, 0]  # a changed, c unchanged, b deleted
    assert sorted((c["title"], c["text"]) for c in chunks(qdrant_path)) == [
        ("Alpha", "First, changed."),
        ("c", "Charlie."),
    ]


def pdf_with_unsupported_encryption() -> bytes:
    """A well-formed PDF whose encryption pypdf does not implement (NotImplementedError)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R "
        "/Encrypt << /Filter /Standard /V 9 /R 9 /O (x) /U (y) /P -4 >> /ID [(a)(b)] >>\n"
        f"startxref\n{xref}\n%%EOF"
    ).encode()
    return bytes(out)


def test_hostile_files_are_failures_and_links_are_not_followed(
    qdrant_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the root password is hunter2")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nStill ingested.\n")
    (docs / "encrypted.pdf").write_bytes(pdf_with_unsupported_encryption())
    (docs / "huge.txt").write_text("x" * 2048)
    (docs / "linked.txt").symlink_to(outside / "secret.txt")
    (docs / "linked-folder").symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(documents.load_file, "__kwdefaults__", {"max_bytes": 1024})

    result = run(str(docs))

    assert result.exit_code == 1, result.output  # failures reported, the run completed
    assert "encrypted.pdf" in result.output and "NotImplementedError" in result.output
    assert "huge.txt" in result.output and "larger than" in result.output
    stored = chunks(qdrant_path)
    assert [c["title"] for c in stored] == ["Good"]
    assert "hunter2" not in json.dumps(stored)


def test_a_missing_path_fails_without_deleting_what_it_had_ingested(
    qdrant_path: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nFirst.\n")
    assert run(str(docs)).exit_code == 0
    (docs / "a.md").unlink()
    docs.rmdir()

    result = run(str(docs))

    assert result.exit_code == 1
    assert "no such file or directory" in result.output
    assert [c["title"] for c in chunks(qdrant_path)] == ["Alpha"]


def test_the_sample_knowledge_base_loads(qdrant_path: Path) -> None:
    result = run("--sample")

    assert result.exit_code == 0, result.output
    stored = chunks(qdrant_path)
    assert {c["root"] for c in stored} == {SAMPLE_ROOT}
    assert {c["doc_title"] for c in stored} == {
        "Shipping and delivery",
        "Returns and refunds",
        "Payments and billing",
        "Catalogue and ordering",
    }
    canada = next(c for c in stored if c["title"].endswith("Shipping to Canada"))
    assert canada["url"] == "https://bookstore.example/help/shipping"
    assert canada["source"] == "sample_kb/shipping.md"
    assert "we ship to every Canadian province" in canada["text"]
    assert summary(run("--sample").output) == [0, 0, 4, 0, 0]  # nothing changed


def test_usage_errors_are_explained() -> None:
    assert "nothing to ingest" in run().output
    assert "nothing to ingest" in run("files").output
    assert "needs --url and --space" in run("confluence", "--url", "http://x").output
    assert (
        "goes without --url and --space" in run("confluence", "--export", "d", "--url", "u").output
    )
    # Confluence's options belong to its subcommand, not to files.
    wrong = run("docs", "--space", "S")
    assert wrong.exit_code == 2 and "No such option" in wrong.output


def test_ingest_is_a_group_whose_default_is_files() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "files" in result.output and "confluence" in result.output
    assert "--url" in run("confluence", "--help").output
    assert "--url" not in run("files", "--help").output


# --- Confluence -------------------------------------------------------------------------


@dataclass
class FakeConfluence:
    """Pages of one space, served like /rest/api/content with `_links.next` pagination."""

    space: str = "SUP"
    token: str = "secret-token"
    pages: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (title, body)
    requests: list[tuple[str, dict[str, list[str]], str | None]] = field(default_factory=list)
    base: str = ""
    email: str | None = None  # Confluence Cloud: Basic auth with e-mail and API token
    link_base: str | None = None  # what `_links.base` says (default: this server)
    next_host: str | None = None  # where `_links.next` points (default: relative)

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, Any]:
        self.requests.append((path, query, auth))
        expected = f"Bearer {self.token}"
        if self.email:
            expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if auth != expected:
            return 401, {"message": "unauthorized"}
        if path != "/wiki/rest/api/content" or query.get("spaceKey") != [self.space]:
            return 404, {"message": "not found"}
        start, limit = int(query["start"][0]), int(query["limit"][0])
        ids = sorted(self.pages)
        results = [
            {
                "id": page_id,
                "type": "page",
                "title": self.pages[page_id][0],
                "version": {"number": 1},
                "body": {"storage": {"value": self.pages[page_id][1]}},
                "_links": {"webui": f"/spaces/{self.space}/pages/{page_id}"},
            }
            for page_id in ids[start : start + limit]
        ]
        links: dict[str, str] = {"base": self.link_base or f"{self.base}/wiki", "context": "/wiki"}
        if start + limit < len(ids):
            links["next"] = (
                f"{self.next_host or ''}/rest/api/content?spaceKey={self.space}&type=page"
                f"&expand=body.storage,version&start={start + limit}&limit={limit}"
            )
        return 200, {"results": results, "start": start, "limit": limit, "size": len(results),
                     "_links": links}  # fmt: skip


@contextmanager
def serving(fake: FakeConfluence) -> Iterator[FakeConfluence]:

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, body = fake.answer(
                url.path, parse_qs(url.query), self.headers.get("Authorization")
            )
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def confluence() -> Iterator[FakeConfluence]:
    with serving(FakeConfluence()) as fake:
        yield fake


def ingest_space(fake: FakeConfluence, token: str | None = None, *args: str) -> Any:
    # A local test server speaks plain HTTP: allowed explicitly. The token comes from the
    # environment, never from the command line.
    return run(
        "confluence",
        "--url",
        f"{fake.base}/wiki",
        "--space",
        fake.space,
        "--allow-http",
        *args,
        env={"CONFLUENCE_TOKEN": token or fake.token},
    )


def test_a_confluence_space_is_ingested_page_by_page_and_kept_in_sync(
    qdrant_path: Path, confluence: FakeConfluence, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "CONFLUENCE_PAGE_SIZE", 2)
    confluence.pages = {
        "101": ("Refunds", "<p>Refunds take <strong>5 days</strong>.</p>"
                "<h2>PayPal</h2><p>Too.</p>"),
        "102": ("Shipping", "<p>We ship to Canada.</p>"),
        "103": ("Hours", '<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">'
                "x</ac:parameter><ac:rich-text-body><p>Open 9-5.</p></ac:rich-text-body>"
                "</ac:structured-macro>"),
    }  # fmt: skip

    first = ingest_space(confluence)

    assert first.exit_code == 0, first.output
    assert summary(first.output) == [3, 4, 0, 0, 0]
    # Two pages per request: the second request followed `_links.next`.
    starts = [q["start"] for path, q, _ in confluence.requests]
    assert starts == [["0"], ["2"]]
    assert all(auth == "Bearer secret-token" for _, _, auth in confluence.requests)
    assert confluence.requests[0][1]["expand"] == ["body.storage,version"]
    stored = {c["title"]: c for c in chunks(qdrant_path)}
    assert set(stored) == {"Refunds", "Refunds > PayPal", "Shipping", "Hours"}
    assert stored["Refunds"]["text"] == "Refunds take 5 days."
    assert stored["Hours"]["text"] == "Open 9-5."
    assert stored["Shipping"]["url"] == f"{confluence.base}/wiki/spaces/SUP/pages/102"

    confluence.pages["102"] = ("Shipping", "<p>We ship to Canada and Mexico.</p>")
    del confluence.pages["103"]
    second = ingest_space(confluence)

    assert summary(second.output) == [1, 1, 1, 1, 0]
    titles = {c["title"]: c["text"] for c in chunks(qdrant_path)}
    assert titles == {
        "Refunds": "Refunds take 5 days.",
        "Refunds > PayPal": "Too.",
        "Shipping": "We ship to Canada and Mexico.",
    }


def test_a_refused_token_fails_the_run_and_deletes_nothing(
    qdrant_path: Path, confluence: FakeConfluence
) -> None:
    confluence.pages = {"101": ("Refunds", "<p>Within 30 days.</p>")}
    assert ingest_space(confluence).exit_code == 0

    refused = ingest_space(confluence, token="wrong")

    assert refused.exit_code == 1
    assert "HTTP 401" in refused.output
    assert [c["title"] for c in chunks(qdrant_path)] == ["Refunds"]


def test_pagination_without_a_next_link_falls_back_to_start_plus_limit() -> None:
    from tidings.memory.knowledge.confluence import _next_request

    url = "https://wiki.example/rest/api/content"
    params = {"spaceKey": "S", "start": 0, "limit": 2}

    assert _next_request({}, "https://wiki.example", url, params, 2) == (
        url,
        {**params, "start": 2},
    )
    assert _next_request({}, "https://wiki.example", url, params, 1) == (None, None)  # last page
    assert _next_request(
        {"next": "/rest/api/content?start=2"}, "https://wiki.example", url, params, 2
    ) == ("https://wiki.example/rest/api/content?start=2", None)


def test_the_token_goes_nowhere_but_the_configured_host(
    qdrant_path: Path, confluence: FakeConfluence, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "CONFLUENCE_PAGE_SIZE", 1)
    confluence.pages = {"101": ("Refunds", "<p>30 days.</p>"), "102": ("Hours", "<p>9-5.</p>")}
    with serving(FakeConfluence()) as elsewhere:
        confluence.next_host = elsewhere.base
        next_elsewhere = ingest_space(confluence)
        confluence.next_host = None
        confluence.link_base = f"{elsewhere.base}/wiki"
        base_elsewhere = ingest_space(confluence)

    for result in (next_elsewhere, base_elsewhere):
        assert result.exit_code == 1
        assert "not followed" in result.output
    assert elsewhere.requests == []  # never asked, so never given the token
    # Only what the configured host served was kept (its first page, before the link).
    assert {c["source"].split("/pages/")[0] for c in chunks(qdrant_path)} == {
        f"{confluence.base}/wiki/spaces/SUP"
    }


def test_plain_http_needs_to_be_allowed_and_the_token_is_no_argument(
    qdrant_path: Path, confluence: FakeConfluence
) -> None:
    refused = run("confluence", "--url", f"{confluence.base}/wiki", "--space", "SUP")
    as_argument = run("confluence", "--url", "https://wiki.example", "--space", "S", "--token", "t")

    assert refused.exit_code == 2 and "plain HTTP" in refused.output
    assert confluence.requests == []
    assert as_argument.exit_code == 2 and "No such option" in as_argument.output


def test_a_token_file_and_confluence_clouds_basic_auth(
    qdrant_path: Path, confluence: FakeConfluence, tmp_path: Path
) -> None:
    confluence.pages = {"101": ("Refunds", "<p>Within 30 days.</p>")}
    confluence.email = "support@shop.example"
    token_file = tmp_path / "token"
    token_file.write_text(confluence.token + "\n")

    result = run(
        "confluence",
        "--url",
        f"{confluence.base}/wiki",
        "--space",
        confluence.space,
        "--allow-http",
        "--token-file",
        str(token_file),
        "--email",
        confluence.email,
    )

    assert result.exit_code == 0, result.output
    assert [c["title"] for c in chunks(qdrant_path)] == ["Refunds"]
    assert confluence.requests[0][2].startswith("Basic ")
