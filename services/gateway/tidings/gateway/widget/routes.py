"""Routes serving the chat widget's static files: `/`, `/widget.js`, `/widget.css`, `/demo.css`.

The files ship inside the package (`static/`), so nothing is fetched from a CDN at run time and
no build step is needed. They are public even with `GATEWAY_AUTH=jwt`: the page hands the
widget a token for the API calls (see docs/widget.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from starlette.responses import FileResponse

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

# The demo page runs under the strictest policy the widget supports: only same-origin files,
# no inline script or style, no plugins, no framing. The widget must keep working under it.
DEMO_PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Browsers revalidate (cheap, with the ETag) so a new gateway version is picked up at once.
_ASSET_HEADERS: Final = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# widget.js and widget.css are loaded by other sites' pages: the gateway's default
# `Cross-Origin-Resource-Policy: same-origin` would make browsers refuse them there.
_EMBEDDABLE: Final = {"Cross-Origin-Resource-Policy": "cross-origin"}

router = APIRouter(include_in_schema=False)


def _file(name: str, media_type: str, extra: dict[str, str] | None = None) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, media_type=media_type, headers={**_ASSET_HEADERS, **(extra or {})}
    )


@router.get("/")
async def demo_page() -> FileResponse:
    """A demo shop page with the widget embedded, the way a customer would embed it."""
    return _file(
        "index.html",
        "text/html; charset=utf-8",
        {"Content-Security-Policy": DEMO_PAGE_CSP, "Referrer-Policy": "no-referrer"},
    )


@router.get("/widget.js")
async def widget_script() -> FileResponse:
    """The widget: one `<script src=".../widget.js" defer>` adds the Help button."""
    return _file("widget.js", "text/javascript; charset=utf-8", _EMBEDDABLE)


@router.get("/widget.css")
async def widget_styles() -> FileResponse:
    """The widget's styles, loaded by widget.js into its Shadow DOM root."""
    return _file("widget.css", "text/css; charset=utf-8", _EMBEDDABLE)


@router.get("/demo.css")
async def demo_styles() -> FileResponse:
    """Styles of the demo page around the widget."""
    return _file("demo.css", "text/css; charset=utf-8")
