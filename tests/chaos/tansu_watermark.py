"""Probe: Tansu v0.6.0 (memory storage) loses or overlaps acked records after a late CreateTopics.

What it shows: when the broker restarts empty, producers redeliver the records they had
buffered for partition 4 of a topic that no longer exists. If the CreateTopics for that topic
is answered *after* those produces, it resets the partition's watermark to 0: later batches
get base offsets inside existing batches (overlapping or duplicate acked offsets), records the
broker acked are never returned to a consumer, and the next produce fails with UnknownError
(`AlreadyExists` on the batch object in the broker log).

Each trial starts a broker, creates the topic (6 partitions), lets several producers learn the
metadata and write to partition 4, SIGKILLs the broker and restarts it empty on the same port
while every producer has records buffered for partition 4. After the redelivery it produces a
few more records, then fetches partition 4 straight from the broker (bypassing aiokafka's
client-side filtering) and checks the acked offsets against what the broker returns.

Modes:
  late   CreateTopics after the redelivered records are acked: hits every time.
  race   CreateTopics fired right at the restart, as the gateway's broker watch does:
         hits sometimes.
  gated  CreateTopics answered before any record is sent after the restart: never hits.

Usage:
  python tests/chaos/tansu_watermark.py [--trials N] [--mode late|race|gated]

The script starts its own Tansu processes on free 127.0.0.1 ports (through
`tidings.cli.infra.tansu_command` and `free_port`), always kills them (try/finally), and
bounds every step with a timeout. Broker output goes to a temporary directory. It is a probe,
not a test: it prints one line per trial and a summary, and always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

from tidings.cli.infra import free_port, tansu_command

MODES = ("late", "race", "gated")
TOPIC = "t"
PARTITIONS = 6
PARTITION = 4  # the partition every record is written to
PRODUCERS = 3
BUFFERED_PER_PRODUCER = 6  # records each producer buffers while the broker is down
AFTERWARDS = 6  # records produced one by one once the redelivery has settled
BROKER_STARTUP_S = 0.3
BROKER_DOWN_S = 0.2
ACK_TIMEOUT_S = 8.0
LATE_ACK_TIMEOUT_S = 5.0
FETCH_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
TRIAL_TIMEOUT_S = 25.0
FETCH_MAX_BYTES = 8 << 20

Batch = tuple[int, list[tuple[int, str | None]]]


class Brokers:
    """The Tansu processes of one trial, all writing to one log file."""

    def __init__(self, log: IO[bytes]) -> None:
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, port: int) -> subprocess.Popen[bytes]:
        """Start an empty memory-storage broker on 127.0.0.1:port."""
        proc = subprocess.Popen(tansu_command(port), stdout=self.log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        """SIGKILL every broker still running and reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@dataclass
class TrialResult:
    """What one trial acked, failed and read back."""

    acked: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    create: str = "-"
    hw_after_redelivery: int = -1
    fetch_error: int = 0
    hw: int = -1
    batches: list[Batch] = field(default_factory=list)

    def ranges(self) -> list[tuple[int, int]]:
        return [(base, recs[-1][0]) for base, recs in self.batches if recs]

    def overlaps(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        ranges = self.ranges()
        return [(a, b) for a, b in pairwise(ranges) if b[0] <= a[1]]

    def duplicate_offsets(self) -> list[int]:
        counts = Counter(offset for offset, _ in self.acked)
        return sorted(offset for offset, n in counts.items() if n > 1)

    def lost(self) -> list[tuple[int, str]]:
        read = {value for _, recs in self.batches for _, value in recs}
        return [(offset, tag) for offset, tag in self.acked if tag not in read]

    @property
    def hit(self) -> bool:
        return bool(self.overlaps() or self.duplicate_offsets() or self.lost())

    def line(self, k: int) -> str:
        return (
            f"trial {k}: create {self.create}; hw after redelivery {self.hw_after_redelivery}; "
            f"acked {len(self.acked)} errors {len(self.errors)} {self.errors[:3]}; "
            f"hw {self.hw} batches {self.ranges()} overlap {self.overlaps()[:3]} "
            f"dupoffs {self.duplicate_offsets()[:5]} lost {self.lost()[:5]} "
            f"-> {'HIT' if self.hit else 'ok'}"
        )


async def create_topic(bootstrap: str, tries: int = 60) -> str:
    """CreateTopics(TOPIC, PARTITIONS), retried until the broker answers; the error codes."""
    for _ in range(tries):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            response = await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
            return str([(name, code) for name, code, *_ in response.topic_errors])
        except Exception:
            await asyncio.sleep(0.005)
        finally:
            await admin.close()
    return "no answer"


async def raw_fetch(bootstrap: str, offset: int = 0) -> tuple[int, int, list[Batch]]:
    """Fetch TOPIC/PARTITION from the broker itself, with no client-side filtering.

    Returns (error code, high watermark, [(batch base offset, [(offset, value)])]).
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        request = FetchRequest(
            300, 1, FETCH_MAX_BYTES, 0, [(TOPIC, [(PARTITION, offset, FETCH_MAX_BYTES)])]
        )
        response: Any = await asyncio.wait_for(client.send(node, request), FETCH_TIMEOUT_S)
        part = response.topics[0][1][0]
        error_code, hw, data = part[1], part[2], part[-1]
        batches: list[Batch] = []
        records = MemoryRecords(data)
        while (batch := records.next_batch()) is not None:
            values = [(r.offset, r.value.decode() if r.value else None) for r in batch]
            batches.append((batch.base_offset, values))
        return error_code, hw, batches
    finally:
        await client.close()


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=3000,
        retry_backoff_ms=20,
        enable_idempotence=False,
    )


async def buffer_records(producers: list[AIOKafkaProducer]) -> list[tuple[str, Any]]:
    """Queue BUFFERED_PER_PRODUCER records per producer; their delivery futures."""
    futures = []
    for j in range(BUFFERED_PER_PRODUCER):
        for i, producer in enumerate(producers):
            tag = f"p{i}-{j}"
            futures.append((tag, await producer.send(TOPIC, tag.encode(), partition=PARTITION)))
    return futures


async def collect_acks(futures: list[tuple[str, Any]], result: TrialResult) -> None:
    for tag, future in futures:
        try:
            metadata = await asyncio.wait_for(future, ACK_TIMEOUT_S)
            result.acked.append((metadata.offset, tag))
        except Exception as exc:
            result.errors.append((tag, type(exc).__name__))


async def produce_afterwards(producer: AIOKafkaProducer, result: TrialResult) -> None:
    """One record per request, once the redelivery has settled."""
    for j in range(AFTERWARDS):
        tag = f"late-{j}"
        send = producer.send_and_wait(TOPIC, tag.encode(), partition=PARTITION)
        try:
            metadata = await asyncio.wait_for(send, LATE_ACK_TIMEOUT_S)
            result.acked.append((metadata.offset, tag))
        except Exception as exc:
            result.errors.append((tag, type(exc).__name__))


async def stop_producers(producers: list[AIOKafkaProducer]) -> None:
    for producer in producers:
        try:
            await asyncio.wait_for(producer.stop(), STOP_TIMEOUT_S)
        except Exception as exc:
            print(f"  producer stop failed: {exc!r}")


async def restart_broker(brokers: Brokers, port: int) -> None:
    """Kill every broker and start an empty one on the same port."""
    brokers.kill_all()
    await asyncio.sleep(BROKER_DOWN_S)
    brokers.start(port)


async def trial(mode: str, brokers: Brokers) -> TrialResult:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    result = TrialResult()
    brokers.start(port)
    await asyncio.sleep(BROKER_STARTUP_S)
    await create_topic(bootstrap)
    producers = [new_producer(bootstrap) for _ in range(PRODUCERS)]
    racing_create: asyncio.Task[str] | None = None
    try:
        for producer in producers:
            await producer.start()
        for producer in producers:
            await producer.send_and_wait(TOPIC, b"pre", partition=PARTITION)

        if mode == "gated":
            # App-level gate: nothing is sent until CreateTopics is answered after the restart.
            await restart_broker(brokers, port)
            result.create = await create_topic(bootstrap)
            futures = await buffer_records(producers)
        else:
            brokers.kill_all()
            futures = await buffer_records(producers)  # buffered while the broker is down
            await asyncio.sleep(BROKER_DOWN_S)
            brokers.start(port)
            if mode == "race":
                racing_create = asyncio.create_task(create_topic(bootstrap))

        await collect_acks(futures, result)
        if mode == "late":
            result.create = await create_topic(bootstrap)
        elif racing_create is not None:
            result.create = await racing_create
        result.hw_after_redelivery = (await raw_fetch(bootstrap))[1]

        await produce_afterwards(producers[0], result)
        await stop_producers(producers)
        result.fetch_error, result.hw, result.batches = await raw_fetch(bootstrap)
        return result
    finally:
        if racing_create is not None and not racing_create.done():
            racing_create.cancel()
        await stop_producers(producers)  # stop() is a no-op on a stopped producer
        brokers.kill_all()


async def run(trials: int, mode: str, log_dir: Path) -> tuple[int, int]:
    """Run the trials; (trials with bad acked records, trials with produce errors)."""
    hits = errored = 0
    with (log_dir / f"tansu-{mode}.log").open("wb") as log:
        for k in range(trials):
            brokers = Brokers(log)
            try:
                result = await asyncio.wait_for(trial(mode, brokers), TRIAL_TIMEOUT_S)
            except Exception as exc:
                print(f"trial {k}: aborted {exc!r}", flush=True)
                continue
            finally:
                brokers.kill_all()
            print(result.line(k), flush=True)
            hits += result.hit
            errored += bool(result.errors)
    return hits, errored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5, help="number of trials (default 5)")
    parser.add_argument("--mode", choices=MODES, default="race", help="default: race")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # aiokafka logs every refused connection
    with tempfile.TemporaryDirectory(prefix="tansu-watermark-") as tmp:
        hits, errored = asyncio.run(run(args.trials, args.mode, Path(tmp)))
    print(
        f"SUMMARY mode={args.mode}: {hits}/{args.trials} trials with overlapping, duplicate "
        f"or lost acked records; {errored}/{args.trials} with produce errors"
    )


if __name__ == "__main__":
    main()
