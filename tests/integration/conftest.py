"""Fixtures shared by the integration tests that run the memory worker."""

from __future__ import annotations

import pytest

from tidings.memory.embedder import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged all-MiniLM-L6-v2 model, loaded once per session (loading takes seconds)."""
    return Embedder.load()
