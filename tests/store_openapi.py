"""docs/store-api.yaml from the code (YAML here: the store image has no YAML library):

.venv/bin/python tests/store_openapi.py > docs/store-api.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tidings.store.openapi import spec  # noqa: E402


def as_yaml() -> str:
    header = (
        "# The bookstore API: the contract between Tidings' tools and the store's own system.\n"
        "# Generated from the code: .venv/bin/python tests/store_openapi.py > docs/store-api.yaml\n"
    )
    return header + yaml.safe_dump(spec(), sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(as_yaml())
