"""`make run` serves the memory API to this machine only, behind a credential of its own."""

from __future__ import annotations

from tidings.cli.dev import plan
from tidings.memory.settings import MemorySettings


def test_make_run_binds_memory_to_loopback_with_a_fresh_credential() -> None:
    first, second = plan({}).env, plan({}).env

    assert first["MEMORY_HOST"] == "127.0.0.1"
    assert len(first["MEMORY_API_TOKEN"]) >= 32
    assert first["MEMORY_API_TOKEN"] != second["MEMORY_API_TOKEN"]
    # The memory service accepts what the plan gives it.
    settings = MemorySettings(host=first["MEMORY_HOST"], api_token=first["MEMORY_API_TOKEN"])
    assert settings.api_token is not None


def test_a_configured_credential_is_kept() -> None:
    env = plan({"MEMORY_API_TOKEN": "x" * 40, "MEMORY_HOST": "0.0.0.0"}).env

    assert env["MEMORY_API_TOKEN"] == "x" * 40
    assert env["MEMORY_HOST"] == "0.0.0.0"
