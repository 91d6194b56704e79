"""The memory command group: `tidings memory` runs the worker, `rebuild` is a subcommand."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tidings.memory import cli


def test_memory_group_lists_rebuild_and_explains_it() -> None:
    result = CliRunner().invoke(cli.memory_app, ["--help"])

    assert result.exit_code == 0
    assert "rebuild" in result.output
    help_text = CliRunner().invoke(cli.memory_app, ["rebuild", "--help"]).output
    assert "--keep-old" in help_text and "fresh collection" in help_text


def test_bad_configuration_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMORY_BATCH_SIZE", "0")

    result = CliRunner().invoke(cli.memory_app, ["rebuild"])

    assert result.exit_code == 2
    assert "invalid configuration: batch_size" in result.output
    assert "Traceback" not in result.output
