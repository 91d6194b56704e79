"""Chaos drills and soak: `python tests/chaos/run.py [--short] [--soak DURATION] [--llm]`.

Starts the topology (broker, two gateways, two responders, one memory worker) as real
processes on 127.0.0.1, drives simulated users through it, injects every fault in its own
phase (or, with `--soak`, random faults for the given time), then prints one row per fault,
the log lines each fault left, and the closing line `N passed, M failed`. Exits 1 when any
pass condition failed. Logs and `report.md` / `report.json` stay in the run folder.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.chaos import faults as fault_mod  # noqa: E402
from tests.chaos.faults import Fault, FaultRun  # noqa: E402
from tests.chaos.report import (  # noqa: E402
    FaultRow,
    as_json,
    details,
    rss_table,
    summarise,
    table,
    tally,
)
from tests.chaos.topology import Topology  # noqa: E402
from tests.chaos.users import Ledger, MessageLog, User, UserConfig, final_check  # noqa: E402
from tidings.cli import apache_kafka  # noqa: E402


@dataclass(frozen=True)
class Profile:
    """How hard and how long a drill pushes."""

    users: int
    warmup_s: float
    before_s: float
    after_s: float
    poison: int
    stream_bound_s: float


SHORT = Profile(users=4, warmup_s=3, before_s=3, after_s=5, poison=3, stream_bound_s=40)
FULL = Profile(users=12, warmup_s=5, before_s=8, after_s=12, poison=10, stream_bound_s=45)
LLM = Profile(users=3, warmup_s=10, before_s=10, after_s=15, poison=5, stream_bound_s=120)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1h` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 10m, 90s, 1h)")
    value, unit = float(match[1]), match[2] or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="few users, each fault once, <3 min")
    parser.add_argument("--soak", type=parse_duration, metavar="DURATION", help="e.g. 10m")
    parser.add_argument("--llm", action="store_true", help="responders use a llama.cpp server")
    parser.add_argument(
        "--broker",
        choices=("kafka", "tansu"),
        default="kafka",
        help="the broker the drill starts: Apache Kafka (default; Tansu when Java is missing) "
        "or Tansu in memory mode",
    )
    parser.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        help="use this running Kafka instead of starting a broker; the broker-restart fault "
        "is then not injected",
    )
    parser.add_argument("--run-dir", type=Path, help="where logs and the report go (tmp)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (users, soak)")
    return parser.parse_args(argv)


async def run_phase(topology: Topology, fault: Fault, profile: Profile, ledger: Ledger) -> FaultRun:
    """before window, inject, during window, restore, after window, then the checks."""
    run = FaultRun(fault.name, recover_from=fault.recover_from)
    print(f"[{datetime.now(UTC):%H:%M:%S}] phase: {fault.name}", flush=True)
    run.started_at = time.monotonic()
    await asyncio.sleep(profile.before_s)
    run.injected_at = time.monotonic()
    run.injected_wall = datetime.now(UTC)
    await fault.inject(topology, run)  # may move the injection time (waits for mid-answer)
    print(
        f"[{datetime.now(UTC):%H:%M:%S}]   injected at {run.injected_wall:%H:%M:%S.%f}", flush=True
    )
    await asyncio.sleep(fault.during_s)
    run.restore_started_at = time.monotonic()
    await fault.restore(topology, run)
    run.restored_at = time.monotonic()
    await asyncio.sleep(profile.after_s)
    run.ended_at = time.monotonic()
    await fault.check(topology, run)
    return run


async def drill(args: argparse.Namespace, topology: Topology) -> tuple[list[FaultRow], str]:
    profile = LLM if args.llm else SHORT if args.short else FULL
    rng = random.Random(args.seed)
    await asyncio.to_thread(topology.start_all)
    rss_start = topology.rss()
    ledger = Ledger()
    stop = asyncio.Event()
    config = UserConfig(stream_bound_s=profile.stream_bound_s)
    limits = httpx.Limits(max_connections=profile.users * 4 + 20)
    runs: list[FaultRun] = []
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        users = [
            User(i, topology.gateway_urls, ledger, config, random.Random(rng.random()))
            for i in range(profile.users)
        ]
        tasks = [asyncio.create_task(user.run(client, stop)) for user in users]
        try:
            await asyncio.sleep(profile.warmup_s)
            broker = topology.owns_broker
            if args.soak:
                factories = fault_mod.by_name(profile.poison, broker)
                deadline = time.monotonic() + args.soak
                while time.monotonic() < deadline:
                    fault = factories[rng.choice(list(factories))]()
                    runs.append(await run_phase(topology, fault, profile, ledger))
            else:
                for fault in fault_mod.schedule(poison_count=profile.poison, broker=broker):
                    runs.append(await run_phase(topology, fault, profile, ledger))
        finally:
            stop.set()
            done, pending = await asyncio.wait(tasks, timeout=profile.stream_bound_s + 20)
            for task in pending:
                task.cancel()
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        unanswered = [m for m in ledger.messages if m.terminal != "done"]
        print(f"final check of {len(unanswered)} messages without a `done`", flush=True)
        semaphore = asyncio.Semaphore(16)

        async def check(message: MessageLog) -> None:
            async with semaphore:
                await final_check(client, topology.gateway_urls, message, 5.0)

        await asyncio.gather(*(check(m) for m in unanswered))
    rss_end = topology.rss()
    dump = [dataclasses.asdict(m) for m in ledger.messages]
    (topology.run_dir / "messages.json").write_text(json.dumps(dump, indent=1))
    rows = [summarise(run, ledger, runs, topology.broker_is_memory) for run in runs]
    extra = ""
    if args.soak:
        extra = "\n\nResident memory:\n\n" + rss_table(
            rss_start, rss_end, {n: p.starts for n, p in topology.procs.items()}
        )
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="tidings-chaos-"))
    broker = args.broker
    fallback = apache_kafka.unavailable() if broker == "kafka" and not args.kafka else None
    if fallback:
        print(f"Apache Kafka cannot run here ({fallback}): the drill runs on Tansu", flush=True)
        broker = "tansu"
    topology = Topology(run_dir, llm=args.llm, bootstrap=args.kafka, broker=broker)
    topology.plan()
    command = "python tests/chaos/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"chaos drill: {command.strip()} (logs in {run_dir})", flush=True)
    try:
        rows, extra = asyncio.run(drill(args, topology))
    finally:
        topology.stop_all()
    passed, failed = tally(rows)
    notes = []
    if topology.broker_is_memory:
        notes.append(
            "Broker: Tansu in memory mode, which keeps nothing across a restart; answers "
            "accepted but unanswered when it stopped are counted as 'lost by broker', not "
            "'lost'. With a durable Kafka (--kafka) there is no such column to hide in."
        )
    elif topology.owns_broker:
        notes.append(
            f"Broker: Apache Kafka {apache_kafka.KAFKA_VERSION}, one KRaft node whose log stays "
            "on disk across the broker restart, as in production: nothing may be lost."
        )
    else:
        notes.append("Broker: external Kafka (--kafka); the broker-restart fault was not injected.")
    text = "\n\n".join(
        [table(rows), details(rows) + extra, *notes, f"{passed} passed, {failed} failed"]
    )
    print(text, flush=True)
    (run_dir / "report.md").write_text(f"`{command.strip()}`\n\n{text}\n")
    (run_dir / "report.json").write_text(json.dumps(as_json(rows), indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
