"""The store API's OpenAPI document, as FastAPI builds it from the routes.

`python tests/store_openapi.py > docs/store-api.yaml` writes it as YAML; a unit test keeps
the file in sync with the code.
"""

from __future__ import annotations

from typing import Any

from tidings.store.api import create_app
from tidings.store.catalogue import Links
from tidings.store.db import Database
from tidings.store.settings import StoreSettings


def spec() -> dict[str, Any]:
    """The OpenAPI document (no database is opened)."""
    db = Database("sqlite://")
    try:
        app = create_app(db, StoreSettings(), Links("https://shop.example"))
        return app.openapi()
    finally:
        db.close()
