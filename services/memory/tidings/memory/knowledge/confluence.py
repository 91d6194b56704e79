"""A Confluence space as documents, through the REST API (Server, Data Center and Cloud).

`GET {url}/rest/api/content?spaceKey=&type=page&expand=body.storage,version` lists the
pages with their storage-format bodies, a page of results at a time; the next page is
`_links.next` (relative to `_links.base`), or `start + limit` when a server leaves the link
out. A page whose body cannot be read is reported as a failure; the listing goes on.

Authentication: a bearer token (a Server or Data Center personal access token), or Basic
with an e-mail and an API token (Confluence Cloud). The credential goes to the configured
host only: every request, and every link the server answers with, must be on the URL's own
scheme, host and port (a `_links.next` or `_links.base` elsewhere ends the listing), and the
URL must be https unless plain HTTP is explicitly allowed.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from tidings.common.logging import get_logger
from tidings.memory.knowledge.documents import Document, html_sections
from tidings.memory.knowledge.ingest import Failure, Item

log = get_logger(__name__)

_RETRIES = 4


class ConfluenceError(RuntimeError):
    """The space cannot be listed (bad URL, token, space key, server down)."""


@dataclass(frozen=True, slots=True)
class ConfluenceSpace:
    """Where the space is and how to authenticate."""

    url: str  # base URL, e.g. https://example.atlassian.net/wiki
    space: str
    token: str | None = None
    page_size: int = 25
    email: str | None = None
    """With `token`: Basic auth as Confluence Cloud wants it (e-mail + API token)."""
    allow_http: bool = False

    def __post_init__(self) -> None:
        parts = httpx.URL(self.url)
        if parts.scheme not in ("https", "http") or not parts.host:
            raise ConfluenceError(f"{self.url!r} is not an http(s) URL")
        if parts.scheme == "http" and not self.allow_http:
            raise ConfluenceError(
                f"{self.url} is plain HTTP: the token would travel unencrypted "
                "(use https, or allow plain HTTP explicitly)"
            )

    @property
    def root(self) -> str:
        """The ingest root: pages that disappear from the space are removed."""
        return f"confluence:{self.url.rstrip('/')}:{self.space}"

    def headers(self) -> dict[str, str]:
        """The request headers, with the credential."""
        headers = {"Accept": "application/json"}
        if self.token and self.email:
            basic = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def pinned(self, url: str) -> str:
        """`url` when it is on the configured scheme, host and port; else ConfluenceError."""
        if _origin(url) != _origin(self.url):
            raise ConfluenceError(
                f"the server pointed to {_origin(url)}, not {_origin(self.url)}: not followed "
                "(the credential goes to the configured host only)"
            )
        return url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port


class ConfluenceListing:
    """The pages of a space as `Document`s; `complete` once the listing reached its end."""

    def __init__(self, space: ConfluenceSpace, client: httpx.AsyncClient) -> None:
        self._space = space
        self._client = client
        self.complete = False
        self.pages_seen = 0

    async def items(self) -> AsyncIterator[Item]:
        """The pages, then a `Failure` if the listing broke off (leaving `complete` False)."""
        try:
            async for item in self._pages():
                yield item
        except ConfluenceError as exc:
            yield Failure(self._space.root, "", self._space.url, str(exc))

    async def _pages(self) -> AsyncIterator[Item]:
        space = self._space
        base = space.url.rstrip("/")
        url: str | None = f"{base}/rest/api/content"
        params: dict[str, Any] | None = {
            "spaceKey": space.space,
            "type": "page",
            "expand": "body.storage,version",
            "start": 0,
            "limit": space.page_size,
        }
        while url is not None:
            body = await self._get(url, params)
            results = body.get("results")
            if not isinstance(results, list):
                raise ConfluenceError(f"{url}: the answer has no 'results' list")
            links = body.get("_links") or {}
            link_base = str(links.get("base") or base).rstrip("/")
            space.pinned(link_base)
            for page in results:
                self.pages_seen += 1
                yield page_document(page, space, link_base)
            url, params = _next_request(links, link_base, url, params, len(results))
        self.complete = True

    async def _get(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        headers = self._space.headers()
        self._space.pinned(url)
        for attempt in range(1, _RETRIES + 1):
            try:
                response = await self._client.get(url, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt == _RETRIES:
                    raise ConfluenceError(f"cannot reach {url}: {exc!r}") from exc
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == _RETRIES:
                    raise ConfluenceError(f"{url}: HTTP {response.status_code} after retries")
                await asyncio.sleep(_retry_after(response, 0.5 * 2**attempt))
                continue
            if response.status_code in (401, 403):
                raise ConfluenceError(
                    f"{url}: HTTP {response.status_code}, the token was refused or may not "
                    f"read space {self._space.space!r}"
                )
            if response.status_code >= 400:
                raise ConfluenceError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
            try:
                data = response.json()
            except ValueError as exc:
                raise ConfluenceError(f"{url}: the answer is not JSON") from exc
            if not isinstance(data, dict):
                raise ConfluenceError(f"{url}: the answer is not a JSON object")
            return data
        raise AssertionError("unreachable: _RETRIES >= 1")


def _next_request(
    links: dict[str, Any],
    link_base: str,
    url: str,
    params: dict[str, Any] | None,
    count: int,
) -> tuple[str | None, dict[str, Any] | None]:
    """The next page's request: `_links.next`, else start + limit while pages are full."""
    following = links.get("next")
    if following:
        following = str(following)
        return (following if "://" in following else f"{link_base}{following}"), None
    if params is not None and count and count >= int(params["limit"]):
        return url, {**params, "start": int(params["start"]) + count}
    return None, None


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(float(response.headers.get("Retry-After", default)), 30.0)
    except ValueError:
        return default


def page_document(page: Any, space: ConfluenceSpace, link_base: str) -> Item:
    """One page of the listing as a document (or a failure saying what is missing)."""
    page_id = str(page.get("id", "")) if isinstance(page, dict) else ""
    title = str(page.get("title") or "") if isinstance(page, dict) else ""
    webui = ((page.get("_links") or {}).get("webui") if isinstance(page, dict) else None) or ""
    url = f"{link_base}{webui}" if webui else f"{link_base}/pages/viewpage.action?pageId={page_id}"
    source = url
    if not page_id:
        return Failure(space.root, "", source, "page without an id")
    storage = ((page.get("body") or {}).get("storage") or {}).get("value")
    if not isinstance(storage, str):
        return Failure(space.root, page_id, source, "page without a storage-format body")
    _, _, sections = html_sections(f"<h1>{_escape(title)}</h1>{storage}", title or page_id)
    if not sections:
        return Failure(space.root, page_id, source, "page has no text")
    return Document(
        root=space.root,
        key=page_id,
        title=title or page_id,
        source=source,
        url=url,
        sections=tuple(sections),
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
