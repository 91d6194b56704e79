"""The embeddable chat widget: a demo page at `/` and `/widget.js`, served by the gateway."""

from tidings.gateway.widget.routes import router

__all__ = ["router"]
