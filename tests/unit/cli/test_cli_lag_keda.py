"""KEDA's Kafka scaler arithmetic, as `tidings lag` reproduces it (no broker needed)."""

from __future__ import annotations

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from tidings.cli.lag import (
    GroupLag,
    KedaKafkaScaler,
    LagReport,
    OffsetResetPolicy,
    PartitionLag,
    lag,
    render,
)


def test_partition_lag_is_log_end_minus_committed() -> None:
    scaler = KedaKafkaScaler()
    assert scaler.partition_lag(log_start=0, log_end=42, committed=40) == 2
    assert scaler.partition_lag(log_start=0, log_end=42, committed=42) == 0


def test_committed_offset_past_the_log_end_counts_zero_not_negative() -> None:
    # kedacore/keda#2612: a negative lag once scaled a deployment to its maximum.
    assert KedaKafkaScaler().partition_lag(log_start=0, log_end=5, committed=7) == 0


@pytest.mark.parametrize(
    ("policy", "scale_to_zero", "expected"),
    [
        (OffsetResetPolicy.LATEST, False, 1),
        (OffsetResetPolicy.LATEST, True, 0),
        (OffsetResetPolicy.EARLIEST, False, 90),  # log end - log start, not the end alone
    ],
)
def test_partition_without_commit_counts_per_offset_reset_policy(
    policy: OffsetResetPolicy, scale_to_zero: bool, expected: int
) -> None:
    scaler = KedaKafkaScaler(
        offset_reset_policy=policy, scale_to_zero_on_invalid_offset=scale_to_zero
    )
    assert scaler.partition_lag(log_start=10, log_end=100, committed=None) == expected


def test_replicas_are_total_lag_over_threshold_rounded_up() -> None:
    scaler = KedaKafkaScaler(lag_threshold=10, min_replicas=1, max_replicas=6)
    assert scaler.replicas([5, 0, 0, 0, 0, 0]) == 1
    assert scaler.replicas([11, 0, 0, 0, 0, 0]) == 2
    assert scaler.replicas([10, 10, 10, 1, 0, 0]) == 4


def test_replicas_are_capped_at_the_partition_count_unless_idle_consumers_allowed() -> None:
    lags = [100, 100, 100]
    assert KedaKafkaScaler(lag_threshold=10, min_replicas=1).replicas(lags) == 3
    idle = KedaKafkaScaler(lag_threshold=10, min_replicas=1, allow_idle_consumers=True)
    assert idle.replicas(lags) == 30
    assert (
        KedaKafkaScaler(lag_threshold=10, max_replicas=12, allow_idle_consumers=True).replicas(lags)
        == 12
    )


def test_limit_to_partitions_with_lag_caps_at_busy_partitions() -> None:
    scaler = KedaKafkaScaler(lag_threshold=1, min_replicas=1, limit_to_partitions_with_lag=True)
    assert scaler.replicas([50, 0, 0, 0, 7, 0]) == 2
    with pytest.raises(ValueError, match="allowIdleConsumers"):
        KedaKafkaScaler(limit_to_partitions_with_lag=True, allow_idle_consumers=True)


def test_activation_threshold_decides_zero_or_one() -> None:
    scaler = KedaKafkaScaler(lag_threshold=10, activation_lag_threshold=3, min_replicas=0)
    assert scaler.replicas([1, 1, 1]) == 0  # 3 is not above the activation threshold
    assert scaler.replicas([2, 1, 1]) == 1
    # With minReplicaCount >= 1 the HPA never goes below it.
    kept = KedaKafkaScaler(lag_threshold=10, activation_lag_threshold=3, min_replicas=2)
    assert kept.replicas([0, 0, 0]) == 2


def test_min_and_max_replicas_clamp() -> None:
    assert KedaKafkaScaler(lag_threshold=5, min_replicas=2).replicas([1, 0]) == 2
    assert KedaKafkaScaler(lag_threshold=1, max_replicas=2).replicas([9, 9, 9]) == 2
    with pytest.raises(ValueError, match="lagThreshold"):
        KedaKafkaScaler(lag_threshold=0)


def test_report_uses_the_partition_count_as_max_replicas() -> None:
    parts = [
        PartitionLag("user_messages", i, 0, 100, 0 if i else None, lag)
        for i, lag in enumerate([100, 100, 100, 100])
    ]
    report = LagReport(
        responder=GroupLag("responder", parts),
        memory=GroupLag("memory"),
        responder_topic="user_messages",
        scaler=KedaKafkaScaler(lag_threshold=10, min_replicas=1),
    )
    assert report.responder_replicas == 4
    data = report.to_json()
    assert data["keda"]["replicas"] == 4
    assert data["groups"][0]["total_lag"] == 400
    assert data["groups"][0]["partitions"][0]["committed"] is None


def test_render_shows_each_partition_and_the_keda_line() -> None:
    report = LagReport(
        responder=GroupLag(
            "responder",
            [
                PartitionLag("user_messages", 0, 0, 30, 10, 20),
                PartitionLag("user_messages", 1, 0, 4, None, 1),
            ],
        ),
        memory=GroupLag("memory", [PartitionLag("model_responses", 0, 0, 9, 9, 0)]),
        responder_topic="user_messages",
        scaler=KedaKafkaScaler(lag_threshold=10, min_replicas=1),
    )
    console = Console(record=True, width=120)
    render(report, console)
    text = console.export_text()
    assert "group responder: total lag 21" in text
    assert "group memory: total lag 0" in text
    assert "2 responder replica(s)" in text  # ceil(21 / 10) = 3, capped at 2 partitions


def test_lag_command_refuses_a_contradictory_scaler_before_connecting() -> None:
    app = typer.Typer()
    app.command()(lag)
    result = CliRunner().invoke(app, ["--min-replicas", "5", "--max-replicas", "2"])
    assert result.exit_code == 2
    assert "maxReplicaCount" in result.output
    assert CliRunner().invoke(app, ["--lag-threshold", "0"]).exit_code == 2
