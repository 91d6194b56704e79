"""`tidings dev`: the whole stack on one machine, as separate processes with prefixed logs.

Starts what is not provided from outside — a broker unless KAFKA_BOOTSTRAP_SERVERS is set
(Apache Kafka, its log in .tidings/kafka, when Java 17+ is here; Tansu otherwise, or with
TIDINGS_DEV_BROKER=tansu), the bundled llama.cpp model server unless another LLM is
configured — then the store, memory, responder and gateway services, exactly as containers
run them (`tidings <service>`).
Ctrl-C (or SIGTERM) stops everything in reverse order; if any process dies, the rest are
stopped too, so a half-running stack never pretends to work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tidings.cli import apache_kafka
from tidings.cli.infra import (
    LLAMA_MODEL_ALIAS,
    InfraError,
    llama_server_command,
    port_is_free,
    tansu_command,
)

_COLORS = ("36", "35", "33", "32", "34", "31")
_STOP_TIMEOUT_S = 25.0


@dataclass
class DevPlan:
    """What `tidings dev` starts and with which environment."""

    env: dict[str, str]
    gateway_port: int
    broker_port: int | None = None
    # Which broker to start (with broker_port): "kafka" or "tansu", and why Tansu.
    broker: str = "kafka"
    broker_note: str | None = None
    controller_port: int | None = None
    llm_port: int | None = None
    services: list[str] = field(default_factory=lambda: ["store", "memory", "responder", "gateway"])


def plan(
    environ: Mapping[str, str],
    *,
    broker_port: int | None = None,
    llm_port: int | None = None,
    kafka_unavailable: str | None = None,
) -> DevPlan:
    """Decide what to start from the environment (pure, so it is unit-tested).

    TIDINGS_BROKER_PORT (9092), TIDINGS_BROKER_CONTROLLER_PORT (9093, Apache Kafka's KRaft
    controller) and TIDINGS_LLM_PORT (8080) move the embedded broker and model server.
    `kafka_unavailable` is why Apache Kafka cannot run here (apache_kafka.unavailable()).
    """
    env = dict(environ)
    broker_port = broker_port or int(env.get("TIDINGS_BROKER_PORT", "9092"))
    llm_port = llm_port or int(env.get("TIDINGS_LLM_PORT", "8080"))
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # A fresh laptop stack answers from the bundled bookstore knowledge base.
    env.setdefault("MEMORY_KNOWLEDGE_SAMPLE", "true")
    # ... and the bundled bookstore backend serves the tools' orders and catalogue.
    store_port = env.setdefault("STORE_PORT", "8003")
    env.setdefault("STORE_API_URL", f"http://127.0.0.1:{store_port}")
    env.setdefault("ORDERS_API_URL", env["STORE_API_URL"])
    # The memory API holds everyone's conversations: this machine only, and only for the
    # services of this run, which share a credential made up for it (docs/security.md).
    env.setdefault("MEMORY_HOST", "127.0.0.1")
    env.setdefault("MEMORY_API_TOKEN", secrets.token_urlsafe(32))
    gateway_port = int(env.get("GATEWAY_PORT", "8000"))
    result = DevPlan(env=env, gateway_port=gateway_port)

    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        result.broker_port = broker_port
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{broker_port}"
        wanted = env.get("TIDINGS_DEV_BROKER", "kafka").strip().lower()
        if wanted == "tansu":
            result.broker, result.broker_note = "tansu", "TIDINGS_DEV_BROKER=tansu"
        elif kafka_unavailable:
            result.broker, result.broker_note = "tansu", kafka_unavailable
        else:
            result.controller_port = int(env.get("TIDINGS_BROKER_CONTROLLER_PORT", "9093"))
            # As deployed: the local broker accepts a 3 s session (apache_kafka), so a
            # responder that dies is replaced within 5 s.
            env.setdefault("RESPONDER_SESSION_TIMEOUT_MS", "3000")
            env.setdefault("RESPONDER_HEARTBEAT_INTERVAL_MS", "750")
        # The services' workarounds follow the broker started (tidings.common.broker_compat).
        env["KAFKA_BROKER"] = result.broker

    if not env.get("LLM_BACKEND") and env.get("OLLAMA_URL"):
        # The seed plans configure Ollama by its URL alone.
        env["LLM_BACKEND"] = "ollama"
    backend = env.get("LLM_BACKEND", "openai").strip().lower()
    llm_configured = backend != "openai" or any(
        env.get(name) for name in ("OPENAI_BASE_URL", "OLLAMA_URL")
    )
    if not llm_configured:
        result.llm_port = llm_port
        env["LLM_BACKEND"] = "openai"
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{llm_port}/v1"
        env.setdefault("OPENAI_MODEL", LLAMA_MODEL_ALIAS)
    return result


def ports_in_use(dev: DevPlan) -> list[tuple[str, int]]:
    """The ports this plan needs that another process already holds."""
    wanted = [
        ("broker", dev.broker_port),
        ("broker's controller", dev.controller_port),
        ("LLM server", dev.llm_port),
        ("gateway", dev.gateway_port),
        ("memory", int(dev.env.get("MEMORY_PORT", "8001"))),
        ("responder", int(dev.env.get("RESPONDER_PORT", "8002"))),
        ("store", int(dev.env.get("STORE_PORT", "8003"))),
    ]
    return [(name, port) for name, port in wanted if port is not None and not port_is_free(port)]


class _Child:
    """One supervised process whose output is printed line by line with its name."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], color: str) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.prefix = f"\033[{color}m{name:<9}|\033[0m " if sys.stdout.isatty() else f"{name:<9}| "
        self.proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children.
        )
        self._pump = asyncio.create_task(self._print_output())

    async def _print_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            sys.stdout.write(self.prefix + line.decode(errors="replace").rstrip() + "\n")
            sys.stdout.flush()

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            await self._drain()
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            _say(f"{self.name} did not stop within {_STOP_TIMEOUT_S:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._pump, 2)


def _say(message: str) -> None:
    sys.stdout.write(f"{'tidings':<9}| {message}\n")
    sys.stdout.flush()


async def _wait_until_ready(url: str, child: _Child, timeout_s: float) -> None:
    """Poll `url` until 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if child.proc is not None and child.proc.returncode is not None:
                raise InfraError(f"{child.name} exited with code {child.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise InfraError(f"{child.name} was not ready at {url} within {timeout_s:.0f}s")


async def _wait_for_port(port: int, child: _Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.returncode is not None:
            raise InfraError(f"{child.name} exited with code {child.proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise InfraError(f"{child.name} did not listen on {port} within {timeout_s:.0f}s")


async def run_dev(dev: DevPlan) -> int:
    """Start everything, wait for Ctrl-C or a crash, stop everything. Returns an exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    children: list[_Child] = []
    colors = iter(_COLORS)

    async def launch(name: str, argv: list[str]) -> _Child:
        child = _Child(name, argv, dev.env, next(colors))
        children.append(child)
        await child.start()
        return child

    exit_code = 0
    try:
        if dev.broker_port is not None and dev.controller_port is not None:
            node = apache_kafka.KafkaNode(
                port=dev.broker_port,
                controller_port=dev.controller_port,
                data_dir=Path(dev.env.get("TIDINGS_DEV_KAFKA_DIR", ".tidings/kafka")),
            )
            argv = await asyncio.to_thread(node.prepare, _say)
            broker = await launch("broker", argv)
            await _wait_for_port(dev.broker_port, broker, 120)
            _say(
                f"Apache Kafka {apache_kafka.KAFKA_VERSION} on {node.bootstrap} "
                f"(KRaft, log in {node.data_dir})"
            )
        elif dev.broker_port is not None:
            broker = await launch("broker", tansu_command(dev.broker_port))
            await _wait_for_port(dev.broker_port, broker, 30)
            _say(
                f"Tansu broker on 127.0.0.1:{dev.broker_port} (memory storage), "
                f"not Apache Kafka: {dev.broker_note}"
            )
        else:
            _say(f"using Kafka at {dev.env['KAFKA_BOOTSTRAP_SERVERS']}")
        if dev.llm_port is not None:
            llm = await launch("llm", llama_server_command(dev.llm_port))
            await _wait_until_ready(f"http://127.0.0.1:{dev.llm_port}/v1/models", llm, 180)
            _say(f"llama.cpp server with SmolLM2-135M-Instruct on 127.0.0.1:{dev.llm_port}")
        else:
            _say(f"using LLM backend {dev.env.get('LLM_BACKEND', 'openai')} from the environment")

        for name in dev.services:
            await launch(name, [sys.executable, "-m", "tidings.cli.main", name])
        ops_ports = {
            "memory": int(dev.env.get("MEMORY_PORT", "8001")),
            "responder": int(dev.env.get("RESPONDER_PORT", "8002")),
            "store": int(dev.env.get("STORE_PORT", "8003")),
            "gateway": dev.gateway_port,
        }
        for child in children[-len(dev.services) :]:
            await _wait_until_ready(f"http://127.0.0.1:{ops_ports[child.name]}/ready", child, 180)

        url = f"http://127.0.0.1:{dev.gateway_port}"
        _say(f"Tidings is ready: {url}")
        _say(
            f"try: curl -s -X POST {url}/chat -H 'content-type: application/json' "
            '-d \'{"message":"What is your return policy?"}\''
        )
        _say("press Ctrl-C to stop")

        waits = {asyncio.create_task(c.wait()): c for c in children}
        stop_wait = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stop_wait, *waits}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in waits:
                _say(f"{waits[task].name} exited with code {task.result()}; stopping the stack")
                exit_code = 1
        for task in (stop_wait, *waits):
            task.cancel()
    except InfraError as exc:
        _say(f"error: {exc}")
        exit_code = 1
    finally:
        _say("stopping")
        for child in reversed(children):
            await child.stop()
        _say("stopped")
    return exit_code


def dev_main() -> int:
    """Entry point for `tidings dev`."""
    needs_broker = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dev = plan(os.environ, kafka_unavailable=apache_kafka.unavailable() if needs_broker else None)
    taken = ports_in_use(dev)
    if taken:
        for name, port in taken:
            _say(f"error: port {port} (for the {name}) is already in use")
        _say(
            "stop the other process (another `make run`?), or point Tidings at it: "
            "KAFKA_BOOTSTRAP_SERVERS for a broker, OPENAI_BASE_URL for an LLM server, "
            "GATEWAY_PORT / MEMORY_PORT / RESPONDER_PORT to move a service"
        )
        return 2
    try:
        return asyncio.run(run_dev(dev))
    except InfraError as exc:
        _say(f"error: {exc}")
        return 1
