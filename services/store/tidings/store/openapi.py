"""The store API's OpenAPI document, as FastAPI builds it from the routes.

`python -m tidings.store.openapi > docs/store-api.yaml` writes it; a unit test keeps the
file in sync with the code.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

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


def as_yaml() -> str:
    header = (
        "# The bookstore API: the contract between Tidings' tools and the store's own system.\n"
        "# Generated from the code: python -m tidings.store.openapi > docs/store-api.yaml\n"
    )
    return header + yaml.safe_dump(spec(), sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(as_yaml())
