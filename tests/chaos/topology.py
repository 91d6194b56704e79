"""The drill's topology: real processes on 127.0.0.1, each logging JSON lines to its own file.

Broker (Apache Kafka, a single KRaft node whose log stays on disk across its restarts, as in
production; or Tansu in memory mode with `--broker tansu`), two gateways, two responders (the
`echo` model, or the llama.cpp server with `--llm`) and one memory worker, started exactly as
an operator would: `python -m tidings.cli.main <service>` configured by environment
variables only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tidings.cli.apache_kafka import KafkaNode
from tidings.cli.infra import (
    free_port,
    llama_server_command,
    tansu_command,
    wait_for_http,
    wait_for_port,
)

GATEWAYS = ("gateway-a", "gateway-b")
RESPONDERS = ("responder-a", "responder-b")


@dataclass
class Proc:
    """One managed process: how to start it, where it logs, and its current Popen."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    port: int = 0
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start (or restart) the process, appending to its log file."""
        if self.alive:
            return
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def signal(self, sig: int) -> None:
        if self.alive and self.popen is not None:
            self.popen.send_signal(sig)

    def wait_exit(self, timeout_s: float) -> bool:
        """True when the process ended within `timeout_s`."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`."""
        self.signal(signal.SIGTERM)
        if not self.wait_exit(grace_s):
            self.kill9()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        if self.ready_url is not None:
            wait_for_http(self.ready_url, timeout_s=timeout_s)
        else:
            wait_for_port(self.port, timeout_s=timeout_s)

    def rss_kb(self) -> int | None:
        """Resident memory (VmRSS) from /proc, or None when not running."""
        if not self.alive or self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_lines(self) -> Iterator[dict[str, Any]]:
        """The JSON log records written so far (non-JSON lines skipped)."""
        if not self.log_path.exists():
            return
        with self.log_path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("{"):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        yield record


@dataclass
class Topology:
    """All processes of one drill and the addresses to reach them."""

    run_dir: Path
    llm: bool = False
    bootstrap: str | None = None  # an external (durable) Kafka; None starts `broker`
    broker: str = "kafka"  # the broker started here: "kafka" (Apache Kafka) or "tansu"
    partitions: int = 6
    procs: dict[str, Proc] = field(default_factory=dict)
    topic_prefix: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:8]}.")

    @property
    def owns_broker(self) -> bool:
        """True when the drill runs its own broker (and may restart it)."""
        return self.bootstrap is None

    @property
    def broker_is_memory(self) -> bool:
        """True when the drill runs its own Tansu broker, which keeps nothing across restarts."""
        return self.owns_broker and self.broker == "tansu"

    def gateway_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.procs[name].port}"

    @property
    def gateway_urls(self) -> dict[str, str]:
        return {name: self.gateway_url(name) for name in GATEWAYS}

    @property
    def kafka_bootstrap(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.procs['broker'].port}"

    def _base_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GATEWAY_", "RESPONDER_", "MEMORY_", "KAFKA_", "LLM_", "ECHO_"))
        }
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap,
            KAFKA_BROKER=self.broker,
            KAFKA_TOPIC_PREFIX=self.topic_prefix,
            KAFKA_TOPIC_PARTITIONS=str(self.partitions),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            MEMORY_URL=f"http://127.0.0.1:{self.procs['memory'].port}",
            PYTHONUNBUFFERED="1",
        )
        return env

    def plan(self) -> None:
        """Choose ports and build every process's command line and environment."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        service = [sys.executable, "-m", "tidings.cli.main"]
        if self.bootstrap is None:
            port = free_port()
            if self.broker == "tansu":
                command = tansu_command(port)
            else:
                node = KafkaNode(
                    port=port, controller_port=free_port(), data_dir=self.run_dir / "kafka"
                )
                command = node.prepare()
            self.procs["broker"] = Proc(
                "broker", command, dict(os.environ), self._log("broker"), port=port
            )
        if self.llm:
            port = free_port()
            self.procs["llm"] = Proc(
                "llm",
                llama_server_command(port),
                dict(os.environ),
                self._log("llm"),
                ready_url=f"http://127.0.0.1:{port}/v1/models",
                port=port,
            )
        memory_port = free_port()
        self.procs["memory"] = Proc(
            "memory", [*service, "memory"], {}, self._log("memory"), port=memory_port
        )
        base = self._base_env()
        self.procs["memory"].env = {
            **base,
            "MEMORY_HOST": "127.0.0.1",
            "MEMORY_PORT": str(memory_port),
            "QDRANT_PATH": str(self.run_dir / "qdrant"),
            "MEMORY_SHUTDOWN_GRACE_S": "10",
        }
        self.procs["memory"].ready_url = f"http://127.0.0.1:{memory_port}/ready"
        for name in RESPONDERS:
            port = free_port()
            self.procs[name] = Proc(
                name,
                [*service, "responder"],
                {**base, **self._responder_env(port)},
                self._log(name),
                ready_url=f"http://127.0.0.1:{port}/ready",
                port=port,
            )
        for name in GATEWAYS:
            port = free_port()
            self.procs[name] = Proc(
                name,
                [*service, "gateway"],
                {**base, **self._gateway_env(port)},
                self._log(name),
                ready_url=f"http://127.0.0.1:{port}/ready",
                port=port,
            )

    def _log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def _responder_env(self, port: int) -> dict[str, str]:
        env = {
            "RESPONDER_HOST": "127.0.0.1",
            "RESPONDER_PORT": str(port),
            "RESPONDER_GRACE_S": "15",
            # The session timeout and heartbeat as deployed (compose, k8s, make run: the
            # broker accepts a 2 s minimum): the drill measures the takeover users get. A
            # kill -9 is noticed after the session timeout (+ up to one heartbeat of the
            # survivor), then a rebalance round hands the partitions over.
            "RESPONDER_SESSION_TIMEOUT_MS": "3000",
            "RESPONDER_HEARTBEAT_INTERVAL_MS": "750",
        }
        if self.llm:
            env.update(
                LLM_BACKEND="openai",
                OPENAI_BASE_URL=f"http://127.0.0.1:{self.procs['llm'].port}/v1",
                LLM_MAX_TOKENS="48",
                LLM_TIMEOUT="60",
            )
        else:
            # ~1.6 s answers: long enough that a fault always finds answers mid-stream.
            env.update(
                LLM_BACKEND="echo",
                ECHO_FIRST_TOKEN_MS="150",
                ECHO_TOKENS_PER_S="20",
                ECHO_TOKENS="30",
            )
        return env

    @staticmethod
    def _gateway_env(port: int) -> dict[str, str]:
        return {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            # Every simulated user is 127.0.0.1: the per-subject limits would throttle the
            # drill itself rather than protect anything.
            "GATEWAY_RATE_PER_S": "1000",
            "GATEWAY_RATE_BURST": "1000",
            "GATEWAY_REQUEST_RATE_PER_S": "1000",
            "GATEWAY_REQUEST_BURST": "1000",
            "GATEWAY_MAX_STREAMS_PER_SUBJECT": "10000",
            "GATEWAY_SSE_PING_S": "5",
        }

    def start_all(self) -> None:
        """Broker (and model server) first, then memory, responders and gateways."""
        order = [name for name in ("broker", "llm") if name in self.procs] + [
            "memory",
            *RESPONDERS,
            *GATEWAYS,
        ]
        for name in order:
            self.procs[name].start()
            if name in ("broker", "llm"):
                self.procs[name].wait_ready(timeout_s=120)
        for name in order:
            self.procs[name].wait_ready(timeout_s=180)

    def stop_all(self) -> None:
        """SIGTERM everything (services before the broker), SIGKILL what lingers."""
        for name in [*GATEWAYS, *RESPONDERS, "memory", "llm", "broker"]:
            proc = self.procs.get(name)
            if proc is not None:
                proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for proc in self.procs.values():
            if not proc.wait_exit(max(0.1, deadline - time.monotonic())):
                proc.kill9()

    def rss(self) -> dict[str, int | None]:
        return {name: proc.rss_kb() for name, proc in self.procs.items()}

    def ready(self, name: str) -> bool:
        proc = self.procs[name]
        if proc.ready_url is None:
            return proc.alive
        try:
            return httpx.get(proc.ready_url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False
