"""The `tidings` command: service commands load lazily and say what is missing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tidings.cli import main


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main.app, ["--help"])
    assert result.exit_code == 0
    for name in ("gateway", "responder", "memory", "ingest", "dev", "topics", "lag"):
        assert name in result.output


def test_command_of_a_missing_extra_explains_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        main._LAZY_COMMANDS, "ghost", ("tidings.not_installed_anywhere", "app", "ghost")
    )
    result = CliRunner().invoke(main.app, ["ghost"])
    assert result.exit_code == 2
    assert "needs the ghost extra" in result.output
    assert "pip install 'tidings[ghost]'" in result.output
    assert "Traceback" not in result.output


def test_version_prints_the_installed_distributions_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(main.app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tidings {version('tidings')}"


def test_ingest_confluence_is_a_subcommand_of_its_own() -> None:
    result = CliRunner().invoke(main.app, ["ingest", "confluence", "--help"])
    assert result.exit_code == 0
    assert "--space" in result.output and "--export" in result.output
    files = CliRunner().invoke(main.app, ["ingest", "files", "--help"])
    assert files.exit_code == 0 and "--space" not in files.output
