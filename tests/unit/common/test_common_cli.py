"""A bad configuration ends a command with one readable line, not a traceback."""

from __future__ import annotations

import pytest
import typer

from tidings.common.cli import load_settings
from tidings.common.settings import KafkaSettings


def test_invalid_setting_exits_2_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "many")
    with pytest.raises(typer.Exit) as exited:
        load_settings(KafkaSettings)
    assert exited.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration: topic_partitions:")
    assert "Traceback" not in err


def test_valid_settings_are_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "12")
    assert load_settings(KafkaSettings).topic_partitions == 12
