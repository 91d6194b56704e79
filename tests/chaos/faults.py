"""The faults of a drill, each injected and undone on the real processes, and what it leaves
in the logs.

Every fault runs in its own phase: a `before` window of normal load, `inject`, a `during`
window, `restore`, an `after` window. The log checks grep the services' own log strings
(see the `log.*` calls in services/*), only in lines written after the injection.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tests.chaos.topology import GATEWAYS, Topology


@dataclass
class FaultRun:
    """When one fault happened and what it produced besides user traffic."""

    name: str
    started_at: float = 0.0
    injected_at: float = 0.0
    injected_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    # When the restoration began (a restarted process starts, joins and rebalances before
    # it reports ready) and when it was done.
    restore_started_at: float = 0.0
    restored_at: float = 0.0
    ended_at: float = 0.0
    log_checks: dict[str, bool] = field(default_factory=dict)
    poison_expected: int | None = None
    poison_found: int | None = None
    poison_detail: dict[str, str] = field(default_factory=dict)
    recover_from: str = "inject"
    broker_restart: bool = False
    # Pass conditions of the fault itself (beyond what users saw and the log lines).
    conditions: dict[str, bool] = field(default_factory=dict)


def logged_after(topology: Topology, proc: str, since: datetime, *needles: str) -> int:
    """How many log lines of `proc` written after `since` have an event containing a needle."""
    count = 0
    for record in topology.procs[proc].log_lines():
        stamp = record.get("timestamp")
        if not isinstance(stamp, str):
            continue
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            continue
        if when >= since and any(n in str(record.get("event", "")) for n in needles):
            count += 1
    return count


def attempts_after(topology: Topology, procs: Iterable[str], since: datetime) -> int:
    """Messages that more than one attempt worked on after `since` (a redelivery)."""
    seen: dict[str, set[str]] = {}
    for proc in procs:
        for record in topology.procs[proc].log_lines():
            stamp, mid, attempt = (
                record.get("timestamp"),
                record.get("message_id"),
                record.get("attempt"),
            )
            if not (isinstance(stamp, str) and mid and attempt):
                continue
            if datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since:
                seen.setdefault(str(mid), set()).add(str(attempt))
    return sum(1 for attempts in seen.values() if len(attempts) > 1)


@dataclass
class Attempt:
    """One answer attempt as published on `model_responses`."""

    message_id: str
    attempt: str
    started_ms: int | None = None  # broker timestamp of its `response.start`
    terminal: str | None = None  # "done" or "error"


def attempts_from_events(events: Iterable[tuple[int, bytes | None]]) -> dict[str, list[Attempt]]:
    """The attempts of every message, in the order they started, from `model_responses`
    records (timestamp in ms, value); records that are not answer events are skipped."""
    by_message: dict[str, dict[str, Attempt]] = {}
    for timestamp, value in events:
        try:
            event = json.loads(value or b"")
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        schema, mid, attempt = event.get("schema"), event.get("message_id"), event.get("attempt")
        if not (isinstance(schema, str) and isinstance(mid, str) and isinstance(attempt, str)):
            continue
        entry = by_message.setdefault(mid, {}).setdefault(attempt, Attempt(mid, attempt))
        if schema.startswith("response.start") and entry.started_ms is None:
            entry.started_ms = timestamp
        elif schema.startswith("response.done"):
            entry.terminal = "done"
        elif schema.startswith("response.error"):
            entry.terminal = "error"
    return {
        mid: sorted(attempts.values(), key=lambda a: (a.started_ms is None, a.started_ms or 0))
        for mid, attempts in by_message.items()
    }


def interrupted_then_answered(
    attempts: dict[str, list[Attempt]], killed_ms: int, answered: AbstractSet[tuple[str, str]]
) -> list[str]:
    """Messages whose answer the kill cut off and a later attempt completed.

    Cut off: an attempt that published `response.start` before the kill and never a terminal
    event. Completed: another attempt of the same message ended with `response.done`, and a
    responder logged `answered` for exactly that (message_id, attempt). Both facts come from
    the services themselves (the answer stream and the responders' logs), not from what one
    client happened to see.
    """
    found = []
    for mid, tries in attempts.items():
        cut = {
            a.attempt
            for a in tries
            if a.terminal is None and a.started_ms is not None and a.started_ms <= killed_ms
        }
        if not cut:
            continue
        if any(
            a.terminal == "done" and a.attempt not in cut and (mid, a.attempt) in answered
            for a in tries
        ):
            found.append(mid)
    return found


def answered_after(topology: Topology, since: datetime) -> set[tuple[str, str]]:
    """(message_id, attempt) of every `answered` log line of the responders after `since`."""
    found: set[tuple[str, str]] = set()
    for proc in ("responder-a", "responder-b"):
        for record in topology.procs[proc].log_lines():
            stamp = record.get("timestamp")
            if record.get("event") != "answered" or not isinstance(stamp, str):
                continue
            if datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since:
                found.add((str(record.get("message_id")), str(record.get("attempt"))))
    return found


async def read_answer_events(topology: Topology) -> list[tuple[int, bytes | None]]:
    """Every record of the drill's `model_responses` topic: (timestamp ms, value)."""
    topic = f"{topology.topic_prefix}model_responses"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=topology.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    out: list[tuple[int, bytes | None]] = []
    try:
        partitions = [
            TopicPartition(topic, p)
            for p in sorted(consumer.partitions_for_topic(topic) or await _parts(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(await _reached(consumer, ends)):
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                out.extend((record.timestamp, record.value) for record in records)
    finally:
        await consumer.stop()
    return out


def owns_all(topology: Topology, proc: str, since: datetime) -> bool:
    """True when `proc` logged "partitions assigned" with every partition after `since`."""
    for record in topology.procs[proc].log_lines():
        stamp = record.get("timestamp")
        if record.get("event") != "partitions assigned" or not isinstance(stamp, str):
            continue
        if datetime.fromisoformat(stamp.replace("Z", "+00:00")) < since:
            continue
        if len(record.get("partitions") or []) >= topology.partitions:
            return True
    return False


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


async def wait_streaming(topology: Topology, proc: str, *, timeout_s: float) -> bool:
    """Poll the responder's metrics until an answer has just begun streaming: an answer
    started since an earlier poll (answers in flight went up, and none ended since) and
    deltas were published in two polls since, so that answer's `start` is on the topic and
    most of its tokens are still to come. (Waiting only for "in flight and
    streaming" could catch an answer in its last milliseconds: with the LLM, a kill 1 ms
    after `answered` cut nothing off.)"""
    url = f"http://127.0.0.1:{topology.procs[proc].port}/metrics"
    deadline = time.monotonic() + timeout_s
    deltas: float | None = None
    in_flight_before: float | None = None
    armed = False
    # Polls since arming in which deltas went out. One is not enough: in CI the deltas of
    # that poll were the last of an older answer, whose `done` was already on its way, while
    # the answer that armed had not streamed yet; the kill then cut nothing off.
    streaming_polls = 0
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                text = (await client.get(url, timeout=2)).text
            except httpx.HTTPError:
                text = ""
            in_flight = _metric(text, "tidings_responder_in_flight")
            now = _metric(text, "tidings_responder_deltas_total")
            if in_flight_before is not None and text:
                if in_flight > in_flight_before:
                    armed, streaming_polls = True, 0
                elif in_flight < in_flight_before:
                    # An answer ended: perhaps the one that had just begun.
                    armed, streaming_polls = False, 0
            if armed and in_flight > 0 and deltas is not None and now > deltas:
                streaming_polls += 1
                if streaming_polls >= 2:
                    return True
            deltas = now if text else None
            in_flight_before = in_flight if text else None
            await asyncio.sleep(0.05)
    return False


async def first_streaming(
    topology: Topology, procs: tuple[str, ...], *, timeout_s: float
) -> str | None:
    """The first of `procs` seen starting to stream an answer (`wait_streaming`), or None."""
    watches = {
        asyncio.create_task(wait_streaming(topology, proc, timeout_s=timeout_s)): proc
        for proc in procs
    }
    pending = set(watches)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.result():
                    return watches[task]
        return None
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class Fault:
    """Base: a named fault with an injection, a restoration and log checks."""

    name: ClassVar[str] = "fault"
    recover_from: ClassVar[str] = "inject"
    during_s: float = 3.0

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        raise NotImplementedError

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        raise NotImplementedError

    async def check(self, topology: Topology, run: FaultRun) -> None:
        """Fill `run.log_checks` (and, for poison, the dead-letter counts)."""


class ResponderKill(Fault):
    """kill -9 a responder mid-answer, then start it again.

    The victim is whichever responder is seen beginning an answer first: the users'
    sessions may all hash to partitions the other one owns (seen in CI: a fixed victim
    answered nothing for the whole phase, so its kill cut nothing off).
    """

    name = "responder kill -9"
    responders = ("responder-a", "responder-b")
    victim, survivor = responders
    # Upper bound of the `during` window: the victim is started again once the survivor has
    # taken all partitions over (the group noticed the death after its session timeout),
    # so the takeover is measured on its own and the restart's rebalance separately.
    during_s = 1.0
    takeover_bound_s = 30.0

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        # Mid-answer: wait (bounded) until a responder is streaming an answer; that one dies.
        streaming = await first_streaming(topology, self.responders, timeout_s=10.0)
        self.victim = streaming or self.responders[0]
        self.survivor = next(name for name in self.responders if name != self.victim)
        seen = "streaming an answer" if streaming else "no answer seen streaming in 10 s"
        print(f"  killing {self.victim} ({seen}); {self.survivor} survives", flush=True)
        run.injected_at = time.monotonic()
        run.injected_wall = datetime.now(UTC)
        await asyncio.to_thread(topology.procs[self.victim].kill9)
        deadline = time.monotonic() + self.takeover_bound_s
        while time.monotonic() < deadline:
            if owns_all(topology, self.survivor, run.injected_wall):
                break
            await asyncio.sleep(0.25)

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        proc = topology.procs[self.victim]
        proc.start()
        await asyncio.to_thread(proc.wait_ready, 120)

    async def check(self, topology: Topology, run: FaultRun) -> None:
        since = run.injected_wall
        run.log_checks["survivor: all partitions assigned"] = owns_all(
            topology, self.survivor, since
        )
        run.log_checks["restarted: responder started"] = (
            logged_after(topology, self.victim, since, "responder started") > 0
        )
        # The answer cut off by the kill (its `start` is on model_responses, no terminal
        # event) finished by another attempt that a responder logged as `answered`.
        killed_ms = int(run.injected_wall.timestamp() * 1000)
        events = await read_answer_events(topology)
        cut = interrupted_then_answered(
            attempts_from_events(events), killed_ms, answered_after(topology, since)
        )
        run.log_checks["redelivered: a cut-off answer finished by a new attempt"] = bool(cut)


class ResponderSigterm(Fault):
    """SIGTERM a responder (a rolling restart): in-flight answers finish, then it leaves."""

    name = "responder SIGTERM"
    victim, survivor = "responder-b", "responder-a"
    during_s = 1.0

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        await asyncio.to_thread(topology.procs[self.victim].stop, 40.0)

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        proc = topology.procs[self.victim]
        proc.start()
        await asyncio.to_thread(proc.wait_ready, 120)

    async def check(self, topology: Topology, run: FaultRun) -> None:
        since = run.injected_wall
        run.log_checks["stopped: shutting down (SIGTERM)"] = (
            logged_after(topology, self.victim, since, "shutting down") > 0
        )
        run.log_checks["survivor: partitions assigned"] = (
            logged_after(topology, self.survivor, since, "partitions assigned") > 0
        )


class GatewayKill(Fault):
    """kill -9 a gateway while streams are open; clients resume on the other one."""

    name = "gateway kill -9"
    victim = "gateway-a"

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        await asyncio.to_thread(topology.procs[self.victim].kill9)

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        proc = topology.procs[self.victim]
        proc.start()
        await asyncio.to_thread(proc.wait_ready, 120)

    async def check(self, topology: Topology, run: FaultRun) -> None:
        run.log_checks["restarted: gateway ready"] = (
            logged_after(topology, self.victim, run.injected_wall, "gateway ready") > 0
        )


class BrokerRestart(Fault):
    """Stop the broker for a few seconds, then start it again (Tansu memory mode forgets)."""

    name = "broker restart"
    recover_from = "restore"
    during_s = 5.0

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        run.broker_restart = True
        await asyncio.to_thread(topology.procs["broker"].stop, 10.0)

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        proc = topology.procs["broker"]
        proc.start()
        await asyncio.to_thread(proc.wait_ready, 60)
        # Recovered means every service is ready again, without being restarted.
        deadline = time.monotonic() + 60
        names = [n for n in topology.procs if n not in ("broker", "llm")]
        states: list[bool] = []
        while time.monotonic() < deadline:
            states = [await asyncio.to_thread(topology.ready, n) for n in names]
            if all(states):
                break
            await asyncio.sleep(0.5)
        down = [n for n, ok in zip(names, states, strict=True) if not ok]
        run.conditions["every service ready again without a restart"] = not down
        if down:
            print(f"  not ready after the broker restart: {', '.join(down)}", flush=True)

    async def check(self, topology: Topology, run: FaultRun) -> None:
        since = run.injected_wall
        for gateway in GATEWAYS:
            run.log_checks[f"{gateway}: broker unreachable"] = (
                logged_after(topology, gateway, since, "broker unreachable") > 0
            )
            run.log_checks[f"{gateway}: recovered from broker outage"] = (
                logged_after(topology, gateway, since, "recovered from broker outage") > 0
            )
        for responder in ("responder-a", "responder-b"):
            # aiokafka's own reconnect warnings, then the fetch loop's retry.
            run.log_checks[f"{responder}: broker reconnect warnings"] = (
                logged_after(topology, responder, since, "Unable connect to node", "fetch failed")
                > 0
            )


class MemoryStop(Fault):
    """Stop the memory service for a while: answers must go on without it."""

    name = "memory stopped"
    recover_from = "restore"
    during_s = 8.0

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        await asyncio.to_thread(topology.procs["memory"].stop, 30.0)

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        proc = topology.procs["memory"]
        proc.start()
        await asyncio.to_thread(proc.wait_ready, 180)

    async def check(self, topology: Topology, run: FaultRun) -> None:
        found = sum(
            logged_after(
                topology,
                name,
                run.injected_wall,
                "memory service unavailable",
            )
            for name in ("responder-a", "responder-b")
        )
        run.log_checks["responder: memory service unavailable"] = found > 0


class PoisonBurst(Fault):
    """Invalid records on every topic: each must reach the `.dlq` of the topics consumed.

    `user_messages` has two consuming groups (responder, memory), so each poison record is
    dead-lettered twice, told apart by the `dlq.consumer.group` header; `model_responses` is
    consumed by the memory group (the gateways read it without a group and skip invalid
    answer events, logging each); `memory_events` has no consumer in the stack, so nothing
    dead-letters it and nothing is expected.
    """

    name = "poison burst"
    during_s = 1.0

    def __init__(self, count: int) -> None:
        self.count = count
        self.payloads: set[bytes] = set()
        self.sent: dict[str, int] = {}

    async def inject(self, topology: Topology, run: FaultRun) -> None:
        prefix = topology.topic_prefix
        producer = AIOKafkaProducer(bootstrap_servers=topology.kafka_bootstrap)
        await producer.start()
        try:
            for topic in ("user_messages", "model_responses", "memory_events"):
                for _ in range(self.count):
                    # Truncated JSON: invalid for every consumer, and unique so it is counted.
                    payload = f'{{"schema": "chaos.poison", "id": "{uuid.uuid4().hex}"'.encode()
                    if await _send(producer, f"{prefix}{topic}", payload):
                        self.payloads.add(payload)
                        self.sent[topic] = self.sent.get(topic, 0) + 1
        finally:
            await producer.stop()

    async def restore(self, topology: Topology, run: FaultRun) -> None:
        return None

    async def check(self, topology: Topology, run: FaultRun) -> None:
        run.log_checks["broker accepted every poison record"] = all(
            self.sent.get(topic, 0) == self.count
            for topic in ("user_messages", "model_responses", "memory_events")
        )
        expected = {
            ("user_messages", "responder"): self.sent.get("user_messages", 0),
            ("user_messages", "memory"): self.sent.get("user_messages", 0),
            ("model_responses", "memory"): self.sent.get("model_responses", 0),
        }
        deadline = time.monotonic() + 30
        found: dict[tuple[str, str], int] = {}
        while time.monotonic() < deadline:
            try:
                found = await self._dead_lettered(topology)
            except KafkaError:
                await asyncio.sleep(1.0)  # a broker just restarted: read again
                continue
            if all(found.get(key, 0) >= n for key, n in expected.items()):
                break
            await asyncio.sleep(1.0)
        run.poison_expected = sum(expected.values())
        run.poison_found = sum(min(found.get(key, 0), n) for key, n in expected.items())
        run.poison_detail = {
            f"{topic}.dlq[{group}]": f"{found.get((topic, group), 0)}/{n}"
            for (topic, group), n in expected.items()
        }
        for gateway in GATEWAYS:
            skipped = logged_after(
                topology, gateway, run.injected_wall, "invalid answer event skipped"
            )
            wanted = self.sent.get("model_responses", 0)
            run.poison_detail[f"{gateway} skipped"] = f"{skipped}/{wanted}"
            run.log_checks[f"{gateway}: invalid answer event skipped"] = skipped >= wanted
        for proc in ("memory", "responder-a", "responder-b"):
            run.log_checks.setdefault("services: event dead-lettered", False)
            if logged_after(topology, proc, run.injected_wall, "event dead-lettered"):
                run.log_checks["services: event dead-lettered"] = True

    async def _dead_lettered(self, topology: Topology) -> dict[tuple[str, str], int]:
        """Our poison records found in the dead-letter topics, by source topic and group."""
        prefix = topology.topic_prefix
        topics = [f"{prefix}user_messages.dlq", f"{prefix}model_responses.dlq"]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=topology.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        found: dict[tuple[str, str], int] = {}
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(
                    consumer.partitions_for_topic(topic) or await _parts(consumer, topic)
                )
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for tp, records in batches.items():
                    for record in records:
                        if record.value not in self.payloads:
                            continue
                        headers = dict(record.headers or ())
                        group = headers.get("dlq.consumer.group", b"?").decode()
                        source = tp.topic.removeprefix(prefix).removesuffix(".dlq")
                        found[(source, group)] = found.get((source, group), 0) + 1
                if all(await _reached(consumer, ends)):
                    break
        finally:
            await consumer.stop()
        return found


async def _send(producer: AIOKafkaProducer, topic: str, payload: bytes) -> bool:
    """Produce one record, retrying a few times (a broker just restarted may refuse at first)."""
    for attempt in range(5):
        try:
            await producer.send_and_wait(topic, payload, key=uuid.uuid4().hex.encode())
        except KafkaError:
            await asyncio.sleep(0.5 * (attempt + 1))
        else:
            return True
    return False


async def _parts(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[bool]:
    return [await consumer.position(tp) >= end for tp, end in ends.items()]


def schedule(*, poison_count: int, broker: bool) -> list[Fault]:
    """Every fault once, the broker restart last (memory-mode Tansu forgets everything)."""
    faults: list[Fault] = [
        PoisonBurst(poison_count),
        MemoryStop(),
        ResponderKill(),
        ResponderSigterm(),
        GatewayKill(),
    ]
    if broker:
        faults.append(BrokerRestart())
    return faults


def by_name(poison_count: int, broker: bool) -> dict[str, Any]:
    """Factories for the soak's random picks."""
    factories: dict[str, Any] = {
        "poison": lambda: PoisonBurst(poison_count),
        "memory": MemoryStop,
        "responder-kill": ResponderKill,
        "responder-term": ResponderSigterm,
        "gateway-kill": GatewayKill,
    }
    if broker:
        factories["broker"] = BrokerRestart
    return factories
