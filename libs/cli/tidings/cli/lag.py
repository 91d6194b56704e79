"""`tidings lag`: consumer lag per partition, and the replica count KEDA would ask for.

Lag of a partition = its log-end offset - the group's committed offset. For the responder
group the command also computes the replica count KEDA's Kafka scaler would set with the
same parameters as the ScaledObject in `k8s/base/responder.yaml`, so an operator can see
during a drill why KEDA scales (or does not).

The committed offsets are read with a plain consumer that carries the group id but never
subscribes: aiokafka only joins a group once there is a subscription, so reading does not
trigger a rebalance of the running workers. (The admin client's
`list_consumer_group_offsets` cannot decode the reply of the Tansu test broker.)
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from tidings.common.broker_compat import BrokerCompat, true_log_ends
from tidings.common.kafka import describe_partitions
from tidings.common.settings import KafkaSettings


class OffsetResetPolicy(StrEnum):
    """KEDA's `offsetResetPolicy`: how a partition without a committed offset counts."""

    LATEST = "latest"
    EARLIEST = "earliest"


@dataclass(frozen=True)
class KedaKafkaScaler:
    """The parameters of KEDA's Kafka scaler (and of the ScaledObject) that decide replicas.

    Defaults are KEDA's own (keda-docs, scalers/apache-kafka, 2.16) except `min_replicas`,
    which is the ScaledObject's `minReplicaCount`.
    """

    lag_threshold: int = 5
    activation_lag_threshold: int = 0
    offset_reset_policy: OffsetResetPolicy = OffsetResetPolicy.LATEST
    allow_idle_consumers: bool = False
    limit_to_partitions_with_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    min_replicas: int = 0
    max_replicas: int | None = None

    def __post_init__(self) -> None:
        if self.lag_threshold < 1:
            raise ValueError("lagThreshold must be at least 1")
        if self.allow_idle_consumers and self.limit_to_partitions_with_lag:
            raise ValueError("limitToPartitionsWithLag cannot be combined with allowIdleConsumers")
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError("maxReplicaCount must not be below minReplicaCount")

    def partition_lag(self, *, log_start: int, log_end: int, committed: int | None) -> int:
        """The lag KEDA counts for one partition.

        Without a committed offset: `latest` counts 1 (so one consumer is kept to pick the
        partition up), or 0 with `scaleToZeroOnInvalidOffset`; `earliest` counts every
        message still in the log (log end - log start, as KEDA since PR #7937, so messages
        removed by retention are not counted). A committed offset above the log end (possible
        for a moment after a topic is recreated) counts 0 rather than a negative lag, which
        once sent KEDA to its maximum (kedacore/keda#2612).
        """
        if committed is None or committed < 0:
            if self.offset_reset_policy is OffsetResetPolicy.EARLIEST:
                return max(log_end - log_start, 0)
            return 0 if self.scale_to_zero_on_invalid_offset else 1
        return max(log_end - committed, 0)

    def is_active(self, lags: Sequence[int]) -> bool:
        """KEDA's activation: the 0 -> 1 step happens when total lag exceeds the threshold."""
        return sum(lags) > self.activation_lag_threshold

    def replicas(self, lags: Sequence[int]) -> int:
        """The replica count KEDA and the HPA settle on for these per-partition lags.

        1. total lag = the sum over partitions;
        2. unless idle consumers are allowed, the total is capped at bound x lagThreshold,
           where bound is the partition count (or the count of partitions with lag when
           `limitToPartitionsWithLag`): a consumer beyond the partition count gets no work;
        3. the HPA targets an average of lagThreshold per replica:
           ceil(total / lagThreshold) (the HPA's 10 % tolerance only delays changes);
        4. the result is clamped to [minReplicaCount, maxReplicaCount]; an inactive scaler
           (step 0) leaves minReplicaCount, which may be 0.
        """
        total = sum(lags)
        if not self.is_active(lags) and self.min_replicas == 0:
            return 0
        if not self.allow_idle_consumers:
            bound = (
                sum(1 for lag in lags if lag > 0)
                if self.limit_to_partitions_with_lag
                else len(lags)
            )
            total = min(total, bound * self.lag_threshold)
        desired = math.ceil(total / self.lag_threshold)
        low = max(self.min_replicas, 1)
        high = self.max_replicas if self.max_replicas is not None else max(desired, low)
        return min(max(desired, low), high)


@dataclass(frozen=True)
class PartitionLag:
    """One partition's offsets for one group."""

    topic: str
    partition: int
    log_start: int
    log_end: int
    committed: int | None
    lag: int


@dataclass
class GroupLag:
    """A consumer group's lag over the partitions of the topics it reads."""

    group: str
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def of_topic(self, topic: str) -> list[PartitionLag]:
        return [p for p in self.partitions if p.topic == topic]


async def read_group_lag(
    settings: KafkaSettings, group: str, topics: Sequence[str], scaler: KedaKafkaScaler
) -> GroupLag:
    """Offsets of `group` on every partition of `topics` (missing topics are skipped)."""
    consumer = AIOKafkaConsumer(
        group_id=group,
        client_id=f"{settings.client_id}-lag",
        enable_auto_commit=False,
        **settings.client_kwargs(),
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise ConnectionError(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        existing = await describe_partitions(settings, topics)
        tps = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in existing.get(topic, ())
        ]
        if not tps:
            return GroupLag(group)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        if BrokerCompat.of(settings).verify_log_ends:
            ends = await true_log_ends(settings, ends)
        result = GroupLag(group)
        for tp in tps:
            committed = await consumer.committed(tp)
            result.partitions.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    log_start=starts[tp],
                    log_end=ends[tp],
                    committed=committed,
                    lag=scaler.partition_lag(
                        log_start=starts[tp], log_end=ends[tp], committed=committed
                    ),
                )
            )
        return result
    except KafkaError as exc:
        raise ConnectionError(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class LagReport:
    """What `tidings lag` shows: both groups and the responder's KEDA replica count."""

    responder: GroupLag
    memory: GroupLag
    responder_topic: str
    scaler: KedaKafkaScaler

    @property
    def responder_replicas(self) -> int:
        lags = [p.lag for p in self.responder.of_topic(self.responder_topic)]
        if not lags:
            return self.scaler.min_replicas
        scaler = self.scaler
        if scaler.max_replicas is None:
            # The ScaledObject's maxReplicaCount is the partition count.
            scaler = KedaKafkaScaler(**{**asdict(scaler), "max_replicas": len(lags)})
        return scaler.replicas(lags)

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "group": g.group,
                    "total_lag": g.total,
                    "partitions": [asdict(p) for p in g.partitions],
                }
                for g in (self.responder, self.memory)
            ],
            "keda": {
                "group": self.responder.group,
                "topic": self.responder_topic,
                "replicas": self.responder_replicas,
                "lag_threshold": self.scaler.lag_threshold,
                "activation_lag_threshold": self.scaler.activation_lag_threshold,
                "offset_reset_policy": str(self.scaler.offset_reset_policy),
                "active": self.scaler.is_active(
                    [p.lag for p in self.responder.of_topic(self.responder_topic)]
                ),
            },
        }


async def collect(
    settings: KafkaSettings, *, responder_group: str, memory_group: str, scaler: KedaKafkaScaler
) -> LagReport:
    """Read both groups' offsets (the memory worker reads both consumed topics)."""
    topic = settings.user_messages_topic
    responder = await read_group_lag(settings, responder_group, [topic], scaler)
    memory = await read_group_lag(
        settings, memory_group, [topic, settings.model_responses_topic], scaler
    )
    return LagReport(responder=responder, memory=memory, responder_topic=topic, scaler=scaler)


def render(report: LagReport, console: Console) -> None:
    """A table per group and the KEDA line."""
    for group in (report.responder, report.memory):
        table = Table(title=f"group {group.group}: total lag {group.total}")
        for column in ("topic", "partition", "log end", "committed", "lag"):
            table.add_column(column, justify="left" if column == "topic" else "right")
        for p in group.partitions:
            table.add_row(
                p.topic,
                str(p.partition),
                str(p.log_end),
                "-" if p.committed is None else str(p.committed),
                str(p.lag),
            )
        console.print(table)
    s = report.scaler
    console.print(
        f"KEDA (group {report.responder.group}, topic {report.responder_topic}, "
        f"lagThreshold {s.lag_threshold}, activationLagThreshold {s.activation_lag_threshold}): "
        f"{report.responder_replicas} responder replica(s)"
    )


def lag(
    lag_threshold: Annotated[
        int, typer.Option(min=1, help="KEDA lagThreshold (the ScaledObject's: 10).")
    ] = 10,
    activation_lag_threshold: Annotated[
        int, typer.Option(min=0, help="KEDA activationLagThreshold.")
    ] = 0,
    min_replicas: Annotated[int, typer.Option(min=0, help="minReplicaCount.")] = 1,
    max_replicas: Annotated[
        int | None, typer.Option(min=1, help="maxReplicaCount (default: the partition count).")
    ] = None,
    offset_reset_policy: Annotated[
        OffsetResetPolicy, typer.Option(help="How a partition never committed counts.")
    ] = OffsetResetPolicy.LATEST,
    allow_idle_consumers: Annotated[
        bool, typer.Option(help="Let replicas exceed the partition count.")
    ] = False,
    scale_to_zero_on_invalid_offset: Annotated[
        bool, typer.Option(help="Count a never-committed partition as 0 (latest policy).")
    ] = False,
    limit_to_partitions_with_lag: Annotated[
        bool, typer.Option(help="Cap replicas at the partitions that have lag.")
    ] = False,
    responder_group: Annotated[
        str, typer.Option(envvar="RESPONDER_GROUP_ID", help="The responder's group id.")
    ] = "responder",
    memory_group: Annotated[
        str, typer.Option(envvar="MEMORY_GROUP_ID", help="The memory worker's group id.")
    ] = "memory",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Consumer lag per partition and the responder replica count KEDA would set."""
    try:
        scaler = KedaKafkaScaler(
            lag_threshold=lag_threshold,
            activation_lag_threshold=activation_lag_threshold,
            offset_reset_policy=offset_reset_policy,
            allow_idle_consumers=allow_idle_consumers,
            scale_to_zero_on_invalid_offset=scale_to_zero_on_invalid_offset,
            limit_to_partitions_with_lag=limit_to_partitions_with_lag,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = KafkaSettings()
    try:
        report = asyncio.run(
            collect(
                settings, responder_group=responder_group, memory_group=memory_group, scaler=scaler
            )
        )
    except ConnectionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        render(report, Console())
