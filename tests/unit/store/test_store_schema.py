"""Schemathesis against the store's own OpenAPI schema (docs/store-api.yaml): no 5xx for any
input, and every answer matches the schema. The app runs in process on a real SQLite
database with the sample data."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tidings.store.api import create_app
from tidings.store.catalogue import Links
from tidings.store.db import Database
from tidings.store.seed import ensure_sample_data
from tidings.store.settings import StoreSettings


def build_app() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="schemathesis-store-"))
    db = Database(f"sqlite:///{folder / 'store.db'}")
    db.create_tables()
    with db.session() as session:
        ensure_sample_data(session)
    return create_app(db, StoreSettings(), Links("https://shop.test"))


CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "404", "405", "406", "413", "415", "422"]
            }
        }
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(), config=CONFIG)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_store_api_matches_its_schema_and_never_fails_on_input(case: schemathesis.Case) -> None:
    # "Schema-valid data must be accepted" is left out: a lookup needs `email` or `customer`
    # (not expressible in the schema), and a valid but unknown order number is a 404.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
